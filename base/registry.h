// Registry<Tag>: plug-ins by name — byte codecs, image codecs, stores and
// ingestion sources each keep one, and each plug-in registers itself from a
// static initializer in its own .cc file.
//
// A Tag names the kind and the factory type:
//
//   struct StoreKind {
//     static constexpr std::string_view kKind = "store scheme";
//     using Factory = std::function<Result<std::shared_ptr<Store>>(...)>;
//   };
//   using StoreRegistry = Registry<StoreKind>;
//   // store.h:  extern template class Registry<StoreKind>;
//   // store.cc: template class Registry<StoreKind>;
//
// The explicit instantiation keeps one table per kind in the library that
// owns it, whichever shared library registers or looks up.
//
// Thread-safety: every member may be called from any thread, including from
// static initializers of other files (the table is created on first use and
// never destroyed, so plug-ins can still be found while the process exits).
#ifndef SHOAL_BASE_REGISTRY_H_
#define SHOAL_BASE_REGISTRY_H_

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/status.h"

namespace shoal {

template <typename Tag>
class Registry {
 public:
  using Factory = typename Tag::Factory;

  /// Registers `factory` under `name`; returns true so that it can run from
  /// a static initializer. The first registration wins (a second one of a
  /// name is a build mistake, and switching implementations silently by
  /// initialization order would be worse) and the second returns false.
  static bool Register(std::string name, Factory factory) {
    Table& t = Get();
    std::lock_guard<std::mutex> lock(t.mu);
    return t.factories.emplace(std::move(name), std::move(factory)).second;
  }

  /// The factory of `name` (a copy: it runs outside the lock, so a factory
  /// may itself look up plug-ins); InvalidArgument naming the known ones
  /// otherwise.
  static Result<Factory> Find(std::string_view name) {
    {
      Table& t = Get();
      std::lock_guard<std::mutex> lock(t.mu);
      auto it = t.factories.find(name);
      if (it != t.factories.end()) return it->second;
    }
    return InvalidArgument("unknown " + std::string(Tag::kKind) + " '" +
                           Printable(name) + "' (known: " + Known() + ")");
  }

  /// The registered names, sorted.
  static std::vector<std::string> Names() {
    Table& t = Get();
    std::lock_guard<std::mutex> lock(t.mu);
    std::vector<std::string> names;
    names.reserve(t.factories.size());
    for (const auto& [name, factory] : t.factories) names.push_back(name);
    return names;
  }

  /// "a, b, c" (or "none"), for messages.
  static std::string Known() {
    std::string out;
    for (const std::string& name : Names()) {
      if (!out.empty()) out += ", ";
      out += name;
    }
    return out.empty() ? "none" : out;
  }

 private:
  struct Table {
    std::mutex mu;
    std::map<std::string, Factory, std::less<>> factories;
  };

  static Table& Get() {
    static Table* const table = new Table();
    return *table;
  }

  // Names come from users (URLs, specs, config files): control bytes would
  // garble terminals and logs.
  static std::string Printable(std::string_view s) {
    std::string out;
    for (char c : s) {
      const auto byte = static_cast<unsigned char>(c);
      if (byte < 0x20 || byte >= 0x7f) {
        static constexpr char kHex[] = "0123456789abcdef";
        out += "\\x";
        out += kHex[byte >> 4];
        out += kHex[byte & 15];
      } else {
        out += c;
      }
    }
    return out;
  }
};

}  // namespace shoal

#endif  // SHOAL_BASE_REGISTRY_H_
