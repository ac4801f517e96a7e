#include <salam/access_list.hpp>

// Implemented in a later change.
