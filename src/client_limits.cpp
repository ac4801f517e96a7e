#include <salam/client_limits.hpp>

// Implemented in a later change.
