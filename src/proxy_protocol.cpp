#include <salam/proxy_protocol.hpp>

// Implemented in a later change.
