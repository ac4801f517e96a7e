#include <algorithm>
#include <bit>
#include <mutex>
#include <new>
#include <random>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include <salam/access_list.hpp>
#include <salam/client_limits.hpp>

namespace salam {

namespace {

using Key = unsigned __int128;

constexpr std::size_t kMaxStripes = 64;
// A stripe is an independent LRU; one that is too small evicts almost at
// random, so small tables get fewer stripes rather than tiny ones.
constexpr std::size_t kMinEntriesPerStripe = 16;

constexpr Key kMappedBase = Key{0xffff} << 32;
constexpr Key kMappedMask = ~((Key{1} << 32) - 1);

// Keeps the top `bits` bits of a 128-bit number.
Key keep_top_bits(Key number, int bits) noexcept {
  if (bits <= 0) return 0;
  if (bits >= 128) return number;
  return number & ~((Key{1} << (128 - bits)) - 1);
}

// A 64-bit mixer (the finaliser of MurmurHash3): every input bit affects
// every output bit, so nearby addresses spread over stripes and buckets.
std::uint64_t mix(std::uint64_t x) noexcept {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// Seeded per table, so a client choosing its source addresses cannot aim
// them at one bucket or one stripe without knowing the seed.
struct KeyHash {
  std::uint64_t seed = 0;
  std::size_t operator()(Key key) const noexcept {
    const auto high = static_cast<std::uint64_t>(key >> 64);
    const auto low = static_cast<std::uint64_t>(key);
    return mix(mix(high ^ seed) ^ low);
  }
};

std::size_t stripe_count_for(std::size_t max_clients) noexcept {
  return std::clamp<std::size_t>(std::bit_floor(max_clients / kMinEntriesPerStripe), 1,
                                 kMaxStripes);
}

// The stripe of a key: the hash's top bits, where the buckets (which use
// the hash modulo their count) look least.
std::size_t stripe_of(const KeyHash& hash, std::size_t stripe_count, Key key) noexcept {
  return static_cast<std::size_t>(hash(key) >> 58) & (stripe_count - 1);
}

void check_options(const ClientLimitOptions& options) {
  if (options.ipv4_prefix < 0 || options.ipv4_prefix > 32) {
    throw std::invalid_argument("client limits: ipv4_prefix must be 0-32");
  }
  if (options.ipv6_prefix < 0 || options.ipv6_prefix > 128) {
    throw std::invalid_argument("client limits: ipv6_prefix must be 0-128");
  }
  if (!(options.rate >= 0)) throw std::invalid_argument("client limits: rate must be >= 0");
  if (options.rate > 0 && !(options.burst >= 1)) {
    throw std::invalid_argument("client limits: burst must be >= 1 when a rate is set");
  }
  if (options.max_clients == 0) {
    throw std::invalid_argument("client limits: max_clients must be >= 1");
  }
}

}  // namespace

// One client's state. Invariant: an entry is in its stripe's idle list
// (most recently used first; the tail is the eviction candidate) exactly
// when it has no open connection. Entries with open connections are in no
// list, so they can never be picked.
struct ClientEntry {
  Key key = 0;
  std::size_t open = 0;
  double tokens = 0;
  TimePoint refilled{};
  ClientEntry* newer = nullptr;
  ClientEntry* older = nullptr;
};

struct ClientLimits::Stripe {
  // Aligned so that two stripes' mutexes never share a cache line.
  alignas(64) std::mutex mutex;
  std::unordered_map<Key, ClientEntry, KeyHash> entries;
  ClientEntry* newest_idle = nullptr;
  ClientEntry* oldest_idle = nullptr;
  std::size_t capacity = 0;

  void push_idle(ClientEntry& entry) noexcept;
  void unlink_idle(ClientEntry& entry) noexcept;
  ClientEntry* find_or_make(Key key, TimePoint now, double burst);
};

void ClientLimits::Stripe::push_idle(ClientEntry& entry) noexcept {
  entry.older = newest_idle;
  entry.newer = nullptr;
  if (newest_idle) newest_idle->newer = &entry;
  newest_idle = &entry;
  if (!oldest_idle) oldest_idle = &entry;
}

void ClientLimits::Stripe::unlink_idle(ClientEntry& entry) noexcept {
  (entry.newer ? entry.newer->older : newest_idle) = entry.older;
  (entry.older ? entry.older->newer : oldest_idle) = entry.newer;
  entry.newer = entry.older = nullptr;
}

// The client's entry, made if new: in a full stripe by reusing the node of
// the entry idle for longest, which neither allocates nor grows the table.
// A new entry has no connection yet, so it starts in the idle list like
// any other. Null when the stripe is full of clients with open connections.
ClientEntry* ClientLimits::Stripe::find_or_make(Key key, TimePoint now, double burst) {
  if (auto found = entries.find(key); found != entries.end()) return &found->second;
  const ClientEntry fresh{.key = key, .tokens = burst, .refilled = now};
  ClientEntry* made = nullptr;
  if (entries.size() < capacity) {
    made = &entries.emplace(key, fresh).first->second;
  } else if (oldest_idle) {
    ClientEntry* victim = oldest_idle;
    unlink_idle(*victim);
    auto node = entries.extract(victim->key);
    node.key() = key;
    node.mapped() = fresh;
    made = &entries.insert(std::move(node)).position->second;
  } else {
    return nullptr;
  }
  push_idle(*made);
  return made;
}

namespace {

// Every stripe's table holds the same hash (seed), so the first one's
// serves to pick the stripe.
template <typename Stripe>
Stripe& stripe_for(Stripe* stripes, const ClientLimitOptions& options, Key key) noexcept {
  const std::size_t count = stripe_count_for(options.max_clients);
  return stripes[stripe_of(stripes[0].entries.hash_function(), count, key)];
}

}  // namespace

ClientLimits::ClientLimits(const ClientLimitOptions& options) : options_(options) {
  check_options(options_);
  const std::size_t count = stripe_count_for(options_.max_clients);
  stripes_ = std::make_unique<Stripe[]>(count);
  const KeyHash hash{(std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()};
  for (std::size_t i = 0; i < count; ++i) {
    // Split max_clients exactly: the first stripes take the remainder.
    stripes_[i].capacity = options_.max_clients / count + (i < options_.max_clients % count);
    stripes_[i].entries = std::unordered_map<Key, ClientEntry, KeyHash>(0, hash);
  }
}

ClientLimits::~ClientLimits() = default;

ClientLimits::Admission::Admission(Admission&& other) noexcept
    : limits_(std::exchange(other.limits_, nullptr)), key_(other.key_), verdict_(other.verdict_) {}

ClientLimits::Admission& ClientLimits::Admission::operator=(Admission&& other) noexcept {
  if (this != &other) {
    if (limits_) limits_->release(key_);
    limits_ = std::exchange(other.limits_, nullptr);
    key_ = other.key_;
    verdict_ = other.verdict_;
  }
  return *this;
}

ClientLimits::Admission::~Admission() {
  if (limits_) limits_->release(key_);
}

namespace {

// What counts as one client: the address cut to its family's prefix. An
// IPv4-mapped IPv6 address (a dual-stack socket's IPv4 client) is IPv4, or
// every IPv4 client would share the one /64 ::ffff:0:0/64.
Key client_key(const SocketAddress& address, const ClientLimitOptions& options) noexcept {
  const Key number = address_number(address);
  if ((number & kMappedMask) == kMappedBase) return keep_top_bits(number, 96 + options.ipv4_prefix);
  return keep_top_bits(number, options.ipv6_prefix);
}

// Adds the tokens earned since the last refill, up to the burst. A `now`
// older than the last refill (another thread read the clock earlier and
// got the lock later) earns nothing and does not move time back.
void refill(ClientEntry& entry, TimePoint now, const ClientLimitOptions& options) noexcept {
  if (now <= entry.refilled) return;
  const double seconds = std::chrono::duration<double>(now - entry.refilled).count();
  entry.tokens = std::min(options.burst, entry.tokens + seconds * options.rate);
  entry.refilled = now;
}

}  // namespace

ClientLimits::Admission ClientLimits::admit(const SocketAddress& address, TimePoint now) {
  Admission admission;
  if (options_.max_connections == 0 && options_.rate == 0) return admission;  // nothing to track
  const Key key = client_key(address, options_);
  Stripe& stripe = stripe_for(stripes_.get(), options_, key);
  std::lock_guard lock(stripe.mutex);
  ClientEntry* entry = nullptr;
  try {
    entry = stripe.find_or_make(key, now, options_.burst);
  } catch (const std::bad_alloc&) {
    // Out of memory for an entry: as if there were no room. The table is
    // left consistent (a victim already unlinked is simply gone).
  }
  // No room: admitted untracked, rather than refusing a client for what
  // other clients hold (see the header).
  if (!entry) return admission;
  if (entry->open == 0) stripe.unlink_idle(*entry);
  // The connection count comes first: a refused connection costs no token.
  if (options_.max_connections != 0 && entry->open >= options_.max_connections) {
    admission.verdict_ = Verdict::too_many_connections;
  } else if (options_.rate > 0) {
    refill(*entry, now, options_);
    if (entry->tokens < 1) {
      admission.verdict_ = Verdict::too_fast;
    } else {
      entry->tokens -= 1;
    }
  }
  if (admission.verdict_ == Verdict::admitted) {
    ++entry->open;
    admission.limits_ = this;
    admission.key_ = key;
  } else if (entry->open == 0) {
    stripe.push_idle(*entry);  // refused, still idle; now the most recently seen
  }
  return admission;
}

void ClientLimits::release(unsigned __int128 key) noexcept {
  Stripe& stripe = stripe_for(stripes_.get(), options_, key);
  std::lock_guard lock(stripe.mutex);
  // An entry with an open connection is never evicted, so it is there.
  ClientEntry& entry = stripe.entries.find(key)->second;
  if (--entry.open == 0) stripe.push_idle(entry);
}

std::size_t ClientLimits::tracked_clients() const {
  std::size_t total = 0;
  for (std::size_t i = 0, count = stripe_count_for(options_.max_clients); i < count; ++i) {
    std::lock_guard lock(stripes_[i].mutex);
    total += stripes_[i].entries.size();
  }
  return total;
}

}  // namespace salam
