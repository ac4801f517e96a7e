#include <string>

#include <salam/result.hpp>

namespace salam {

namespace {

class SalamCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "salam"; }
  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
      case Errc::end_of_file:
        return "end of file";
      case Errc::tls_failure:
        return "TLS failure";
    }
    return "unknown salam error";
  }
};

}  // namespace

const std::error_category& salam_category() noexcept {
  static const SalamCategory category;
  return category;
}

std::error_code end_of_file() noexcept {
  return {static_cast<int>(Errc::end_of_file), salam_category()};
}

}  // namespace salam
