#!/usr/bin/env python3
"""A fake BlueZ (org.bluez) for the ble transport's integration tests.

It owns org.bluez on a private dbus-daemon and exports what the gateway uses of BlueZ's D-Bus API:
org.freedesktop.DBus.ObjectManager at /, org.bluez.Adapter1 at /org/bluez/hci0, one
org.bluez.Device1 (Connect, Disconnect, Address, Connected, ServicesResolved), and, while the
device is connected, GattService1/GattCharacteristic1 objects for heart rate (2A37, notify), blood
pressure (2A35, indicate), glucose (2A18 notify + RACP 2A52 write/indicate), battery (2A19 read)
and one characteristic the gateway does not decode (2A38); on request (EnableCurrentTime) also a
Current Time Service (1805) with Current Time (2A2B, read + notify). Notifications arrive the way
BlueZ delivers them: PropertiesChanged(Value) on the characteristic, only while Notifying.

The test drives it through a test-only interface, org.vitalgate.FakeBluez1 at /org/vitalgate/test:
Notify, DisconnectDevice, SetReachable, SetBattery, StoreGlucose, SetResolveServices,
SetStartNotifyError, IgnoreRacpFilter, RemoveDevice, AddDevice, AutoChurn, EnableCurrentTime,
EnablePulseOximeter (a Pulse Oximeter Service, 1822, with PLX Spot-Check Measurement 2A5E) and
Stats (whose counters say how often each characteristic was read: read_2A19, read_2A2B, ...).

Usage: fake_bluez.py BUS_ADDRESS DEVICE_ADDRESS   (prints READY when it owns org.bluez)
"""

import sys

import dbus
import dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

PROPS = "org.freedesktop.DBus.Properties"
OM = "org.freedesktop.DBus.ObjectManager"
ADAPTER = "org.bluez.Adapter1"
DEVICE = "org.bluez.Device1"
SERVICE = "org.bluez.GattService1"
CHAR = "org.bluez.GattCharacteristic1"
TEST = "org.vitalgate.FakeBluez1"


def uuid128(u16):
    return f"0000{u16:04x}-0000-1000-8000-00805f9b34fb"


def ay(values):
    return dbus.Array([dbus.Byte(v) for v in values], signature="y")


class BluezError(dbus.DBusException):
    def __init__(self, name, message):
        super().__init__(message, name=name)


class PropObject(dbus.service.Object):
    """An exported object with one BlueZ interface and org.freedesktop.DBus.Properties."""

    def __init__(self, bus, path, iface, props):
        super().__init__(bus, path)
        self.path = path
        self.iface = iface
        self.props = props

    def exported(self):
        return {self.iface: dbus.Dictionary(self.props, signature="sv")}

    def update(self, **changes):
        self.props.update(changes)
        self.PropertiesChanged(self.iface, dbus.Dictionary(changes, signature="sv"),
                               dbus.Array([], signature="s"))

    @dbus.service.method(PROPS, in_signature="ss", out_signature="v")
    def Get(self, iface, name):
        if iface != self.iface or name not in self.props:
            raise BluezError("org.freedesktop.DBus.Error.InvalidArgs", "no such property")
        return self.props[name]

    @dbus.service.method(PROPS, in_signature="s", out_signature="a{sv}")
    def GetAll(self, iface):
        return dbus.Dictionary(self.props if iface == self.iface else {}, signature="sv")

    @dbus.service.signal(PROPS, signature="sa{sv}as")
    def PropertiesChanged(self, iface, changed, invalidated):
        pass


class Characteristic(PropObject):
    def __init__(self, fake, path, service_path, u16, flags):
        super().__init__(fake.bus, path, CHAR, {
            "UUID": dbus.String(uuid128(u16)),
            "Service": dbus.ObjectPath(service_path),
            "Value": ay([]),
            "Notifying": dbus.Boolean(False),
            "Flags": dbus.Array(flags, signature="s"),
        })
        self.fake = fake
        self.u16 = u16

    def notifying(self):
        return bool(self.props["Notifying"])

    def send(self, value):
        """A notification or indication as BlueZ relays it: the cached Value changes."""
        if not self.notifying():
            return False
        self.update(Value=ay(value))
        return True

    @dbus.service.method(CHAR, in_signature="a{sv}", out_signature="ay")
    def ReadValue(self, options):
        self.fake.count(f"read_{self.u16:04X}")
        if self.u16 == 0x2A19:
            value = [self.fake.battery]
        elif self.u16 == 0x2A2B:
            value = list(self.fake.current_time)
        else:
            value = list(self.props["Value"])
        # BlueZ caches what it read and announces it, exactly like a notification.
        self.update(Value=ay(value))
        return ay(value)

    @dbus.service.method(CHAR, in_signature="aya{sv}")
    def WriteValue(self, value, options):
        if self.u16 != 0x2A52:
            raise BluezError("org.bluez.Error.NotPermitted", "Write not permitted")
        if not self.notifying():
            # ATT "Client Characteristic Configuration Descriptor Improperly Configured".
            raise BluezError("org.bluez.Error.Failed", "Operation failed with ATT error: 0xfd")
        request = bytes(value)
        self.fake.racp_requests.append(request)
        GLib.timeout_add(5, self.fake.answer_racp, request)

    @dbus.service.method(CHAR)
    def StartNotify(self):
        self.fake.count(f"start_notify_{self.u16:04X}")
        if self.fake.start_notify_error:
            raise BluezError(self.fake.start_notify_error, "Operation is not permitted")
        if not self.notifying():
            self.update(Notifying=dbus.Boolean(True))
        self.fake.check_churn()

    @dbus.service.method(CHAR)
    def StopNotify(self):
        if self.notifying():
            self.update(Notifying=dbus.Boolean(False))


class Device(PropObject):
    def __init__(self, fake, path, address):
        super().__init__(fake.bus, path, DEVICE, {
            "Address": dbus.String(address),
            "AddressType": dbus.String("public"),
            "Name": dbus.String("Fake health device"),
            "Adapter": dbus.ObjectPath("/org/bluez/hci0"),
            "Paired": dbus.Boolean(True),
            "Trusted": dbus.Boolean(True),
            "Connected": dbus.Boolean(False),
            "ServicesResolved": dbus.Boolean(False),
        })
        self.fake = fake

    @dbus.service.method(DEVICE, async_callbacks=("reply", "error"))
    def Connect(self, reply, error):
        self.fake.count("connect_calls")
        if bool(self.props["Connected"]):
            reply()
            return
        if not self.fake.reachable:
            # What BlueZ answers when the device does not advertise within its page timeout.
            GLib.timeout_add(20, lambda: error(BluezError("org.bluez.Error.Failed",
                                                          "le-connection-abort-by-local")) and False)
            return

        def connected():
            self.update(Connected=dbus.Boolean(True))
            reply()
            # BlueZ answers Connect before the GATT discovery is over.
            GLib.timeout_add(5, self.fake.resolve_services)
            return False

        GLib.timeout_add(5, connected)

    @dbus.service.method(DEVICE)
    def Disconnect(self):
        self.fake.disconnect()


class Root(dbus.service.Object):
    def __init__(self, fake):
        super().__init__(fake.bus, "/")
        self.fake = fake

    @dbus.service.method(OM, out_signature="a{oa{sa{sv}}}")
    def GetManagedObjects(self):
        self.fake.count("get_managed_objects")
        return dbus.Dictionary({dbus.ObjectPath(p): o.exported() for p, o in self.fake.objects.items()},
                               signature="oa{sa{sv}}")

    @dbus.service.signal(OM, signature="oa{sa{sv}}")
    def InterfacesAdded(self, path, interfaces):
        pass

    @dbus.service.signal(OM, signature="oas")
    def InterfacesRemoved(self, path, interfaces):
        pass


class Control(dbus.service.Object):
    def __init__(self, fake):
        super().__init__(fake.bus, "/org/vitalgate/test")
        self.fake = fake

    @dbus.service.method(TEST, in_signature="say", out_signature="b")
    def Notify(self, uuid, value):
        ch = self.fake.char_by_uuid(int(uuid, 16))
        return bool(ch and ch.send(list(value)))

    @dbus.service.method(TEST)
    def DisconnectDevice(self):
        self.fake.disconnect()

    @dbus.service.method(TEST)
    def ConnectFromOutside(self):
        """The device connects without the gateway asking (bluetoothd's auto-connect of a bonded
        device, or bluetoothctl): Connected goes true and the services resolve."""
        self.fake.device.update(Connected=dbus.Boolean(True))
        GLib.timeout_add(5, self.fake.resolve_services)

    @dbus.service.method(TEST, in_signature="b")
    def SetReachable(self, reachable):
        self.fake.reachable = bool(reachable)

    @dbus.service.method(TEST, in_signature="y")
    def SetBattery(self, level):
        self.fake.battery = int(level)

    @dbus.service.method(TEST, in_signature="ay")
    def EnableCurrentTime(self, value):
        """From the next service resolution on, the device also has the Current Time Service
        (1805) whose Current Time (2A2B, read + notify) reads as `value` (10 bytes: Exact Time 256
        = Date Time, day of week, fractions256, then the adjust reason)."""
        self.fake.current_time = bytes(value)
        self.fake.layout = self.fake.LAYOUT + [self.fake.CURRENT_TIME_SERVICE]

    @dbus.service.method(TEST, in_signature="")
    def EnablePulseOximeter(self):
        """From the next service resolution on, the device also has the Pulse Oximeter Service
        (1822) with PLX Spot-Check Measurement (2A5E, indicate)."""
        self.fake.layout = self.fake.layout + [self.fake.PULSE_OXIMETER_SERVICE]

    @dbus.service.method(TEST, in_signature="aay")
    def StoreGlucose(self, records):
        for r in records:
            self.fake.glucose.append(bytes(r))

    @dbus.service.method(TEST, in_signature="b")
    def SetResolveServices(self, resolve):
        """False: connections come up but GATT discovery never ends (a device gone mute)."""
        self.fake.resolve = bool(resolve)

    @dbus.service.method(TEST, in_signature="s")
    def SetStartNotifyError(self, name):
        """A non-empty D-Bus error name makes StartNotify fail, as on an unpaired device."""
        self.fake.start_notify_error = str(name)

    @dbus.service.method(TEST, in_signature="b")
    def IgnoreRacpFilter(self, ignore):
        """Behave like meters that answer every "report stored records" with all of them."""
        self.fake.ignore_racp_filter = bool(ignore)

    @dbus.service.method(TEST)
    def RemoveDevice(self):
        """As `bluetoothctl remove`: the device object goes away."""
        self.fake.remove_device()

    @dbus.service.method(TEST)
    def AddDevice(self):
        """As a scan or a pairing: the device object (re)appears."""
        self.fake.add_device()

    @dbus.service.method(TEST, in_signature="uu")
    def AutoChurn(self, cycles, delay_ms):
        """Disconnect the device `delay_ms` after each complete subscription, `cycles` times."""
        self.fake.churn_left = int(cycles)
        self.fake.churn_delay_ms = int(delay_ms)
        self.fake.check_churn()

    @dbus.service.method(TEST, out_signature="a{sv}")
    def Stats(self):
        f = self.fake
        return dbus.Dictionary({
            "counters": dbus.Dictionary({k: dbus.UInt32(v) for k, v in f.counters.items()},
                                        signature="su"),
            "connected": dbus.Boolean(f.device is not None and bool(f.device.props["Connected"])),
            "notifying": dbus.Array([f"{c.u16:04X}" for c in f.chars if c.notifying()],
                                    signature="s"),
            "racp_requests": dbus.Array([ay(r) for r in f.racp_requests], signature="ay"),
            "churn_left": dbus.UInt32(f.churn_left),
            "owner": dbus.String(f.bus.get_unique_name()),
        }, signature="sv")


class FakeBluez:
    LAYOUT = [  # (service handle, service uuid, [(char handle, uuid, flags)])
        (0x000a, 0x180D, [(0x000b, 0x2A37, ["notify"]), (0x000e, 0x2A38, ["read", "notify"])]),
        (0x0010, 0x1810, [(0x0011, 0x2A35, ["indicate"])]),
        (0x0020, 0x1808, [(0x0021, 0x2A18, ["notify"]), (0x0024, 0x2A52, ["write", "indicate"])]),
        (0x0030, 0x180F, [(0x0031, 0x2A19, ["read", "notify"])]),
    ]
    CURRENT_TIME_SERVICE = (0x0040, 0x1805, [(0x0041, 0x2A2B, ["read", "notify"])])
    PULSE_OXIMETER_SERVICE = (0x0050, 0x1822, [(0x0051, 0x2A5E, ["indicate"])])
    # What the gateway subscribes to; a churn cycle is complete when all of them notify.
    SUBSCRIBED = {0x2A37, 0x2A35, 0x2A18, 0x2A52}

    def __init__(self, bus, address):
        self.bus = bus
        self.objects = {}
        self.chars = []
        self.counters = {}
        self.reachable = True
        self.battery = 90
        self.glucose = []
        self.resolve = True
        self.start_notify_error = ""
        self.ignore_racp_filter = False
        self.racp_requests = []
        self.layout = list(self.LAYOUT)
        self.current_time = b""
        self.churn_left = 0
        self.churn_delay_ms = 0
        self.churn_scheduled = False
        self.root = Root(self)
        self.control = Control(self)
        self.adapter = PropObject(bus, "/org/bluez/hci0", ADAPTER, {
            "Address": dbus.String("00:1A:7D:DA:71:13"), "Name": dbus.String("fake"),
            "Powered": dbus.Boolean(True), "Discovering": dbus.Boolean(False)})
        self.objects[self.adapter.path] = self.adapter
        self.address = address.upper()
        self.device_path = "/org/bluez/hci0/dev_" + self.address.replace(":", "_")
        self.device = None
        self.add_device()

    def add_device(self):
        if self.device is not None:
            return
        self.device = Device(self, self.device_path, self.address)
        self.objects[self.device_path] = self.device
        self.root.InterfacesAdded(dbus.ObjectPath(self.device_path), self.device.exported())

    def remove_device(self):
        if self.device is None:
            return
        self.disconnect()
        del self.objects[self.device_path]
        self.root.InterfacesRemoved(dbus.ObjectPath(self.device_path),
                                    dbus.Array([DEVICE], signature="s"))
        self.device.remove_from_connection()
        self.device = None

    def count(self, key):
        self.counters[key] = self.counters.get(key, 0) + 1

    def char_by_uuid(self, u16):
        for c in self.chars:
            if c.u16 == u16:
                return c
        return None

    def resolve_services(self):
        if (self.device is None or not bool(self.device.props["Connected"]) or self.chars
                or not self.resolve):
            return False
        for shandle, suuid, chars in self.layout:
            spath = f"{self.device_path}/service{shandle:04x}"
            service = PropObject(self.bus, spath, SERVICE, {
                "UUID": dbus.String(uuid128(suuid)), "Primary": dbus.Boolean(True),
                "Device": dbus.ObjectPath(self.device_path)})
            self.objects[spath] = service
            self.root.InterfacesAdded(dbus.ObjectPath(spath), service.exported())
            for chandle, cuuid, flags in chars:
                cpath = f"{spath}/char{chandle:04x}"
                ch = Characteristic(self, cpath, spath, cuuid, flags)
                self.objects[cpath] = ch
                self.chars.append(ch)
                self.root.InterfacesAdded(dbus.ObjectPath(cpath), ch.exported())
        self.device.update(ServicesResolved=dbus.Boolean(True))
        self.count("resolved")
        return False

    def disconnect(self):
        if self.device is None or not bool(self.device.props["Connected"]):
            return
        # BlueZ's order: services unresolved, link down, then the GATT objects go away.
        self.device.update(ServicesResolved=dbus.Boolean(False))
        self.device.update(Connected=dbus.Boolean(False))
        for path in [p for p in self.objects if p.startswith(self.device_path + "/")]:
            obj = self.objects.pop(path)
            self.root.InterfacesRemoved(dbus.ObjectPath(path), dbus.Array([obj.iface], signature="s"))
            obj.remove_from_connection()
        self.chars = []
        self.count("disconnects")

    def answer_racp(self, request):
        racp = self.char_by_uuid(0x2A52)
        meas = self.char_by_uuid(0x2A18)
        if racp is None or meas is None:
            return False
        if len(request) >= 2 and request[0] == 0x01 and (request[1] == 0x01 or self.ignore_racp_filter):
            records = list(self.glucose)
        elif len(request) == 5 and request[0] == 0x01 and request[1] == 0x03 and request[2] == 0x01:
            first = request[3] | request[4] << 8
            records = [r for r in self.glucose if (r[1] | r[2] << 8) >= first]
        else:
            racp.send([0x06, 0x00, request[0] if request else 0, 0x04])  # operator not supported
            return False
        for r in records:
            meas.send(list(r))
        racp.send([0x06, 0x00, 0x01, 0x01 if records else 0x06])
        self.count("racp_answers")
        return False

    def check_churn(self):
        if self.churn_left == 0 or self.churn_scheduled:
            return
        if {c.u16 for c in self.chars if c.notifying()} >= self.SUBSCRIBED:
            self.churn_scheduled = True

            def cut():
                self.churn_scheduled = False
                self.churn_left -= 1
                self.disconnect()
                return False

            GLib.timeout_add(self.churn_delay_ms, cut)


def main():
    bus_address, device_address = sys.argv[1], sys.argv[2]
    DBusGMainLoop(set_as_default=True)
    bus = dbus.bus.BusConnection(bus_address)
    # Both objects must stay referenced while the loop runs: the exported objects and the name.
    service = (FakeBluez(bus, device_address),
               dbus.service.BusName("org.bluez", bus, do_not_queue=True))
    print("READY", flush=True)
    GLib.MainLoop().run()
    del service


if __name__ == "__main__":
    main()
