#!/usr/bin/env bash
# Creates a private CA, a broker (server) certificate and a gateway (client) certificate for
# mutual TLS on this machine: scripts/gen-certs.sh DIR [CLIENT_CN]
# The server certificate is valid for localhost, 127.0.0.1 and ::1. Keys are mode 0600.
set -euo pipefail
dir=${1:?usage: gen-certs.sh DIR [CLIENT_CN]}
client_cn=${2:-vitalgate-gateway}
days=${DAYS:-825}
mkdir -p "$dir"
cd "$dir"
umask 077

openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
  -keyout ca.key -out ca.crt -subj "/CN=vitalgate test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  2>/dev/null

make_cert() { # name cn extfile
  openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" -sha256 \
    -out "$1.crt" -extfile "$3" 2>/dev/null
  rm -f "$1.csr"
}

cat > server.ext <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
EXT
cat > client.ext <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
EXT
make_cert server localhost server.ext
make_cert client "$client_cn" client.ext
rm -f server.ext client.ext ca.srl
chmod 600 ./*.key
chmod 644 ./*.crt
echo "certificates in $(pwd): ca.crt, server.{crt,key}, client.{crt,key}"
