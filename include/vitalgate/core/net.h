// Host names and addresses as the config gives them. Pure, thread-safe.
#pragma once

#include <string_view>

namespace vg {

// True for "localhost", 127.0.0.0/8 and ::1 (also written "[::1]"): the only hosts plain,
// unencrypted connections may go to.
bool IsLoopbackHost(std::string_view host);

}  // namespace vg
