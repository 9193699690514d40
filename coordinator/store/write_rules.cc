#include "store/write_rules.h"

#include <string_view>

#include "common/text.h"

namespace treaty {

namespace {

constexpr std::string_view kDataErrorPrefix = "data error: ";

bool Storable(std::string_view s) {
  return s.find('\0') == std::string_view::npos && IsValidUtf8(s);
}

bool TextStorable(std::string_view s) { return s.size() <= kMaxStoredTextBytes && Storable(s); }

}  // namespace

bool IsDataError(const Status& s) {
  return s.code() == StatusCode::kInvalidArgument &&
         std::string_view(s.message()).substr(0, kDataErrorPrefix.size()) == kDataErrorPrefix;
}

Status DataError(const std::string& what) {
  return Status::InvalidArgument(std::string(kDataErrorPrefix) + what);
}

std::string StorableText(std::string_view text) {
  if (TextStorable(text)) return std::string(text);
  return Excerpt(text, kMaxStoredTextBytes);
}

Status CheckStorable(const TxnWrite& w) {
  // The gtid itself may be the bad field: messages name fields, not values.
  const auto refuse = [](const std::string& field) {
    return DataError(field + " is not valid UTF-8 or contains NUL");
  };
  if (!Storable(w.gtid)) return refuse("gtid");
  if (!Storable(w.owner)) return refuse("owner of " + w.gtid);
  if (w.state && !Storable(*w.state)) return refuse("state of " + w.gtid);
  if (w.create) {
    const TxnRow& c = *w.create;
    if (!Storable(c.gtid) || !Storable(c.kind) || !Storable(c.state) || !Storable(c.spec) ||
        !Storable(c.owner)) {
      return refuse("the transaction row of " + w.gtid);
    }
  }
  for (size_t i = 0; i < w.new_branches.size(); ++i) {
    const BranchRow& b = w.new_branches[i];
    if (!Storable(b.name) || !Storable(b.state) || !Storable(b.spec)) {
      return refuse("branch #" + std::to_string(i) + " of " + w.gtid);
    }
  }
  for (size_t i = 0; i < w.branch_updates.size(); ++i) {
    const BranchUpdate& u = w.branch_updates[i];
    if (!Storable(u.name) || (u.state && !Storable(*u.state))) {
      return refuse("branch update #" + std::to_string(i) + " of " + w.gtid);
    }
  }
  for (size_t i = 0; i < w.events.size(); ++i) {
    const EventRow& e = w.events[i];
    if (!Storable(e.branch) || !Storable(e.type)) {
      return refuse("event #" + std::to_string(i) + " of " + w.gtid);
    }
  }
  return Status::Ok();
}

bool FreeTextIsStorable(const TxnWrite& w) {
  if (w.create && !TextStorable(w.create->last_error)) return false;
  if (w.last_error && !TextStorable(*w.last_error)) return false;
  for (const BranchRow& b : w.new_branches) {
    if (!TextStorable(b.last_error)) return false;
  }
  for (const BranchUpdate& u : w.branch_updates) {
    if (u.last_error && !TextStorable(*u.last_error)) return false;
  }
  for (const EventRow& e : w.events) {
    if (!TextStorable(e.detail)) return false;
  }
  return true;
}

void FixFreeText(TxnWrite* w) {
  if (w->create) w->create->last_error = StorableText(w->create->last_error);
  if (w->last_error) w->last_error = StorableText(*w->last_error);
  for (BranchRow& b : w->new_branches) b.last_error = StorableText(b.last_error);
  for (BranchUpdate& u : w->branch_updates) {
    if (u.last_error) u.last_error = StorableText(*u.last_error);
  }
  for (EventRow& e : w->events) e.detail = StorableText(e.detail);
}

}  // namespace treaty
