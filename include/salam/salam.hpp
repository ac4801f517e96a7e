// libsalam: everything a server program needs, in one include.
#pragma once

#include <salam/address.hpp>
#include <salam/buffer.hpp>
#include <salam/buffered_reader.hpp>
#include <salam/buffered_writer.hpp>
#include <salam/connection.hpp>
#include <salam/connection_budget.hpp>
#include <salam/event.hpp>
#include <salam/log.hpp>
#include <salam/loop.hpp>
#include <salam/printable.hpp>
#include <salam/result.hpp>
#include <salam/scope.hpp>
#include <salam/server.hpp>
#include <salam/socket.hpp>
#include <salam/task.hpp>
#include <salam/time.hpp>
#include <salam/tls.hpp>
