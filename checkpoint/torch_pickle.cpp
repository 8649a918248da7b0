#include "checkpoint/torch_pickle.h"

#include <cstring>
#include <map>
#include <memory>
#include <unordered_map>

#include "core/error.h"

namespace pgolf {

namespace {

constexpr int kMaxDepth = 64;       // containers in containers: deeper is refused, never recursed into
constexpr size_t kMaxRank = 64;     // tensor dimensions
constexpr size_t kMaxLine = 256;    // a GLOBAL's module or name
// The legacy format's first pickle: torch's magic number 0x1950a86a20f9469cfc6c, a LONG1 of 10
// bytes (more than any value a state dict holds, so it is matched whole, not unpickled).
constexpr uint8_t kLegacyMagic[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                    0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'};

struct StorageType {
  const char* name;
  DType dtype;
};
constexpr StorageType kStorageTypes[] = {
    {"DoubleStorage", DType::F64}, {"FloatStorage", DType::F32}, {"HalfStorage", DType::F16},
    {"BFloat16Storage", DType::BF16}, {"LongStorage", DType::I64}, {"IntStorage", DType::I32},
    {"ShortStorage", DType::I16}, {"CharStorage", DType::I8}, {"ByteStorage", DType::U8},
    {"BoolStorage", DType::BOOL},
};

// A value on the unpickler's stack. Containers are sealed once they are inside another (so no
// cycle can form) and hold their depth (so none is deeper than kMaxDepth).
struct Value {
  enum class Kind { None, Bool, Int, Float, String, Tuple, List, Dict, Global, Storage, Tensor, Device } kind;
  int64_t number = 0;   // Bool, Int; Storage: index
  double real = 0;      // Float
  std::string text;     // String, Device; Global: "module.name"
  std::vector<std::shared_ptr<Value>> items;  // Tuple, List; Dict: key, value, key, value, ...
  PickledTensor tensor;                       // Tensor
  int depth = 0;
  bool sealed = false;
};
using Ptr = std::shared_ptr<Value>;

const char* kind_name(Value::Kind k) {
  static const char* names[] = {"None", "bool", "int", "float", "str", "tuple", "list", "dict", "global", "storage",
                                "tensor", "device"};
  return names[static_cast<int>(k)];
}

Ptr make(Value::Kind kind) {
  auto v = std::make_shared<Value>();
  v->kind = kind;
  return v;
}

class Unpickler {
 public:
  // legacy: persistent ids of the legacy format, whose sixth item (a view) must be None.
  Unpickler(std::span<const uint8_t> bytes, const std::string& what, bool legacy = false)
      : in_(bytes), what_(what), legacy_(legacy) {}

  PickledStateDict run() {
    Ptr root = parse();
    require_that(root->kind == Value::Kind::Dict,
                 std::string("the pickle holds a ") + kind_name(root->kind) + ", not a state dict (a dict of tensors)");
    std::map<std::string, bool> seen;
    collect(*root, "", seen);
    require_that(!state_.tensors.empty(), "the state dict holds no tensors");
    return std::move(state_);
  }

  // One pickle's value, from the front of the bytes; position() is where it stopped.
  Ptr value() { return parse(); }
  size_t position() const { return pos_; }
  [[noreturn]] void fail(const std::string& why) const { throw InputError(what_ + ": " + why); }
  void require_that(bool ok, const std::string& why) const {
    if (!ok) fail(why);
  }

 private:
  std::span<const uint8_t> take(uint64_t n) {
    require_that(n <= in_.size() - pos_, "the pickle is truncated at byte " + std::to_string(pos_));
    auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  uint64_t unsigned_le(int bytes) {
    auto b = take(static_cast<uint64_t>(bytes));
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | b[static_cast<size_t>(i)];
    return v;
  }
  std::string text(uint64_t n) {
    auto b = take(n);
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  }
  std::string line() {
    std::string s;
    for (;;) {
      const uint8_t c = take(1)[0];
      if (c == '\n') return s;
      s.push_back(static_cast<char>(c));
      require_that(s.size() <= kMaxLine, "a GLOBAL name longer than " + std::to_string(kMaxLine) + " bytes");
    }
  }

  Ptr pop() {
    require_that(stack_.size() > (marks_.empty() ? 0 : marks_.back()), "the pickle pops an empty stack");
    Ptr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  Ptr& top() {
    require_that(stack_.size() > (marks_.empty() ? 0 : marks_.back()), "the pickle reads an empty stack");
    return stack_.back();
  }
  std::vector<Ptr> pop_to_mark() {
    require_that(!marks_.empty(), "the pickle has no MARK to pop to");
    std::vector<Ptr> items(std::make_move_iterator(stack_.begin() + static_cast<ptrdiff_t>(marks_.back())),
                           std::make_move_iterator(stack_.end()));
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  void push_int(int64_t v) {
    Ptr p = make(Value::Kind::Int);
    p->number = v;
    stack_.push_back(std::move(p));
  }
  void push_string(std::string s) {
    Ptr p = make(Value::Kind::String);
    p->text = std::move(s);
    stack_.push_back(std::move(p));
  }

  // Puts child into container (tuple, list, dict): seals it and checks the depth.
  void adopt(Value& container, Ptr child) {
    require_that(child.get() != &container, "a container put inside itself");
    child->sealed = true;
    container.depth = std::max(container.depth, child->depth + 1);
    require_that(container.depth <= kMaxDepth, "containers nested deeper than " + std::to_string(kMaxDepth));
    container.items.push_back(std::move(child));
  }
  Ptr tuple(std::vector<Ptr> items) {
    Ptr t = make(Value::Kind::Tuple);
    for (auto& item : items) adopt(*t, std::move(item));
    return t;
  }
  Value& open_container(Value::Kind kind, const char* op) {
    Ptr& target = top();
    require_that(target->kind == kind, std::string(op) + " on a " + kind_name(target->kind));
    require_that(!target->sealed, std::string(op) + " on a container already inside another");
    return *target;
  }

  Ptr global(const std::string& module, const std::string& name) {
    const std::string full = module + "." + name;
    bool allowed = full == "collections.OrderedDict" || full == "torch._utils._rebuild_tensor_v2" ||
                   full == "torch._utils._rebuild_parameter" || full == "torch.device";
    for (const auto& s : kStorageTypes) allowed = allowed || full == std::string("torch.") + s.name;
    require_that(allowed, "global '" + full +
                              "' is not allowed: a state dict of tensors needs only collections.OrderedDict, "
                              "torch._utils._rebuild_tensor_v2 / _rebuild_parameter, torch.<Type>Storage and "
                              "torch.device (nothing is ever called or imported)");
    Ptr g = make(Value::Kind::Global);
    g->text = full;
    return g;
  }

  int64_t as_int(const Ptr& v, const char* what) {
    require_that(v->kind == Value::Kind::Int, std::string(what) + " is a " + kind_name(v->kind) + ", not an int");
    return v->number;
  }
  std::vector<int64_t> int_tuple(const Ptr& v, const char* what) {
    require_that(v->kind == Value::Kind::Tuple, std::string(what) + " is a " + kind_name(v->kind) + ", not a tuple");
    require_that(v->items.size() <= kMaxRank, std::string(what) + " has more than 64 dimensions");
    std::vector<int64_t> out;
    for (const Ptr& item : v->items) {
      out.push_back(as_int(item, what));
      require_that(out.back() >= 0, std::string(what) + " has a negative entry");
    }
    return out;
  }

  // BINPERSID: ('storage', torch.<Type>Storage, key, location, numel).
  Ptr persistent(const Ptr& pid) {
    const size_t items = legacy_ ? 6 : 5;
    require_that(pid->kind == Value::Kind::Tuple && pid->items.size() == items &&
                     pid->items[0]->kind == Value::Kind::String && pid->items[0]->text == "storage",
                 legacy_ ? "a persistent id that is not ('storage', type, key, location, numel, view)"
                         : "a persistent id that is not ('storage', type, key, location, numel)");
    require_that(!legacy_ || pid->items[5]->kind == Value::Kind::None,
                 "a storage view of the legacy format (re-save the file with PyTorch 1.6 or later)");
    const Ptr& type = pid->items[1];
    const Ptr& key = pid->items[2];
    require_that(type->kind == Value::Kind::Global && key->kind == Value::Kind::String,
                 "a persistent id whose storage type or key is malformed");
    const StorageType* found = nullptr;
    for (const auto& s : kStorageTypes)
      if (type->text == std::string("torch.") + s.name) found = &s;
    require_that(found != nullptr, "'" + type->text + "' is not a storage type");
    require_that(pid->items[3]->kind == Value::Kind::String || pid->items[3]->kind == Value::Kind::Device,
                 "a persistent id whose location is not a string");
    const int64_t numel = as_int(pid->items[4], "a storage's size");
    require_that(numel >= 0, "a storage of negative size");
    auto [it, inserted] = storage_index_.emplace(key->text, state_.storages.size());
    if (inserted) state_.storages.push_back({key->text, found->dtype, numel});
    const PickledStorage& s = state_.storages[it->second];
    require_that(s.dtype == found->dtype && s.numel == numel,
                 "storage '" + key->text + "' is named with two types or sizes");
    Ptr v = make(Value::Kind::Storage);
    v->number = static_cast<int64_t>(it->second);
    return v;
  }

  Ptr reduce(const Ptr& callable, const Ptr& args) {
    require_that(callable->kind == Value::Kind::Global, std::string("REDUCE calls a ") + kind_name(callable->kind));
    require_that(args->kind == Value::Kind::Tuple, "REDUCE's arguments are not a tuple");
    const auto& a = args->items;
    const std::string& f = callable->text;
    auto is_empty_dict = [](const Ptr& v) { return v->kind == Value::Kind::Dict && v->items.empty(); };
    if (f == "collections.OrderedDict") {
      require_that(a.empty(), "OrderedDict is built from arguments; torch.save builds it empty, then fills it");
      return make(Value::Kind::Dict);
    }
    if (f == "torch._utils._rebuild_tensor_v2") {
      require_that(a.size() == 6 || a.size() == 7, "_rebuild_tensor_v2 takes 6 or 7 arguments");
      require_that(a[0]->kind == Value::Kind::Storage, "_rebuild_tensor_v2's first argument is not a storage");
      require_that(a[4]->kind == Value::Kind::Bool, "_rebuild_tensor_v2's requires_grad is not a bool");
      require_that(is_empty_dict(a[5]), "a tensor with backward hooks");
      require_that(a.size() == 6 || a[6]->kind == Value::Kind::None || is_empty_dict(a[6]), "a tensor with metadata");
      Ptr t = make(Value::Kind::Tensor);
      t->tensor.storage = static_cast<size_t>(a[0]->number);
      t->tensor.offset = as_int(a[1], "a storage offset");
      require_that(t->tensor.offset >= 0, "a negative storage offset");
      t->tensor.shape = int_tuple(a[2], "a tensor's size");
      t->tensor.stride = int_tuple(a[3], "a tensor's stride");
      require_that(t->tensor.shape.size() == t->tensor.stride.size(), "a tensor whose size and stride differ in length");
      return t;
    }
    if (f == "torch._utils._rebuild_parameter") {
      require_that(a.size() == 3 && a[0]->kind == Value::Kind::Tensor && is_empty_dict(a[2]),
                   "_rebuild_parameter takes (tensor, requires_grad, no hooks)");
      return a[0];
    }
    if (f == "torch.device") {
      require_that(!a.empty() && a.size() <= 2 && a[0]->kind == Value::Kind::String, "torch.device takes a name");
      Ptr d = make(Value::Kind::Device);
      d->text = a[0]->text;
      return d;
    }
    fail("'" + f + "' cannot be called");
  }

  Ptr parse() {
    for (;;) {
      const uint8_t op = take(1)[0];
      switch (op) {
        case 0x80: {  // PROTO
          const uint8_t v = take(1)[0];
          require_that(v >= 2 && v <= 5, "pickle protocol " + std::to_string(v) + " (torch.save writes 2)");
          break;
        }
        case 0x95: take(8); break;  // FRAME: a length hint
        case '.': {                  // STOP
          require_that(marks_.empty() && stack_.size() == 1, "the pickle stops with a malformed stack");
          return stack_.back();
        }
        case '(': marks_.push_back(stack_.size()); break;
        case 'N': stack_.push_back(make(Value::Kind::None)); break;
        case 0x88:
        case 0x89: {
          Ptr b = make(Value::Kind::Bool);
          b->number = op == 0x88;
          stack_.push_back(std::move(b));
          break;
        }
        case 'J': push_int(static_cast<int32_t>(unsigned_le(4))); break;
        case 'K': push_int(static_cast<int64_t>(unsigned_le(1))); break;
        case 'M': push_int(static_cast<int64_t>(unsigned_le(2))); break;
        case 0x8a: {  // LONG1: little-endian two's complement
          const uint8_t n = take(1)[0];
          require_that(n <= 8, "an integer of " + std::to_string(n) + " bytes (at most 8)");
          uint64_t v = n ? unsigned_le(n) : 0;
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);
          push_int(static_cast<int64_t>(v));
          break;
        }
        case 'G': {  // BINFLOAT: big-endian double
          auto b = take(8);
          uint64_t bits = 0;
          for (uint8_t c : b) bits = (bits << 8) | c;
          Ptr f = make(Value::Kind::Float);
          std::memcpy(&f->real, &bits, sizeof bits);
          stack_.push_back(std::move(f));
          break;
        }
        case 'X': push_string(text(unsigned_le(4))); break;
        case 0x8c: push_string(text(unsigned_le(1))); break;
        case 0x8d: push_string(text(unsigned_le(8))); break;
        case ')': stack_.push_back(make(Value::Kind::Tuple)); break;
        case 't': stack_.push_back(tuple(pop_to_mark())); break;
        case 0x85:
        case 0x86:
        case 0x87: {
          std::vector<Ptr> items(static_cast<size_t>(op - 0x84));
          for (size_t i = items.size(); i-- > 0;) items[i] = pop();
          stack_.push_back(tuple(std::move(items)));
          break;
        }
        case ']': stack_.push_back(make(Value::Kind::List)); break;
        case '}': stack_.push_back(make(Value::Kind::Dict)); break;
        case 'a': {
          Ptr v = pop();
          adopt(open_container(Value::Kind::List, "APPEND"), std::move(v));
          break;
        }
        case 'e': {
          std::vector<Ptr> items = pop_to_mark();
          Value& list = open_container(Value::Kind::List, "APPENDS");
          for (auto& item : items) adopt(list, std::move(item));
          break;
        }
        case 's': {
          Ptr v = pop(), k = pop();
          Value& dict = open_container(Value::Kind::Dict, "SETITEM");
          adopt(dict, std::move(k));
          adopt(dict, std::move(v));
          break;
        }
        case 'u': {
          std::vector<Ptr> items = pop_to_mark();
          require_that(items.size() % 2 == 0, "SETITEMS with a key and no value");
          Value& dict = open_container(Value::Kind::Dict, "SETITEMS");
          for (auto& item : items) adopt(dict, std::move(item));
          break;
        }
        case 'q': memo_[unsigned_le(1)] = top(); break;
        case 'r': memo_[unsigned_le(4)] = top(); break;
        case 0x94: memo_[memo_.size()] = top(); break;  // MEMOIZE
        case 'h':
        case 'j': {
          const uint64_t index = unsigned_le(op == 'h' ? 1 : 4);
          auto it = memo_.find(index);
          require_that(it != memo_.end(), "the pickle gets memo entry " + std::to_string(index) + ", never put");
          stack_.push_back(it->second);
          break;
        }
        case 'c': {
          std::string module = line();
          std::string name = line();
          stack_.push_back(global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          Ptr name = pop(), module = pop();
          require_that(name->kind == Value::Kind::String && module->kind == Value::Kind::String,
                       "STACK_GLOBAL of values that are not strings");
          stack_.push_back(global(module->text, name->text));
          break;
        }
        case 'Q': {
          Ptr pid = pop();
          stack_.push_back(persistent(pid));
          break;
        }
        case 'R': {
          Ptr args = pop(), callable = pop();
          stack_.push_back(reduce(callable, args));
          break;
        }
        case 'b': {  // BUILD: an OrderedDict's attributes (torch's _metadata), kept out of the tensors
          Ptr state = pop();
          Ptr& target = top();
          require_that(target->kind == Value::Kind::Dict && !target->sealed &&
                           (state->kind == Value::Kind::Dict || state->kind == Value::Kind::None),
                       std::string("BUILD of a ") + kind_name(target->kind) + " from a " + kind_name(state->kind));
          break;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          fail(std::string("pickle opcode ") + hex + " at byte " + std::to_string(pos_ - 1) +
               " is not allowed in a state dict");
        }
      }
    }
  }

  // Tensors of a dict, nested dicts as dotted names; other leaves are skipped.
  void collect(const Value& dict, const std::string& prefix, std::map<std::string, bool>& seen) {
    for (size_t i = 0; i + 1 < dict.items.size(); i += 2) {
      const Value& key = *dict.items[i];
      const Value& value = *dict.items[i + 1];
      require_that(key.kind == Value::Kind::String, "a key in " + (prefix.empty() ? std::string("the state dict") :
                                                                    "'" + prefix + "'") +
                                                        " is a " + kind_name(key.kind) +
                                                        ", not a name: give a state dict of tensors");
      const std::string name = prefix.empty() ? key.text : prefix + "." + key.text;
      if (value.kind == Value::Kind::Dict) {
        collect(value, name, seen);
      } else if (value.kind == Value::Kind::Tensor) {
        require_that(seen.emplace(name, true).second, "tensor '" + name + "' appears twice");
        state_.tensors.push_back(value.tensor);
        state_.tensors.back().name = name;
      }
    }
  }

  std::span<const uint8_t> in_;
  std::string what_;
  bool legacy_ = false;
  size_t pos_ = 0;
  std::vector<Ptr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Ptr> memo_;
  std::map<std::string, size_t> storage_index_;
  PickledStateDict state_;
};

// The pickle writer's opcodes.
class Pickler {
 public:
  void op(uint8_t code) { out_.push_back(code); }
  void integer(int64_t v) {
    if (v >= 0 && v < 256) {
      op('K');
      op(static_cast<uint8_t>(v));
    } else if (v >= 0 && v < 65536) {
      op('M');
      le(static_cast<uint64_t>(v), 2);
    } else if (v >= INT32_MIN && v <= INT32_MAX) {
      op('J');
      le(static_cast<uint64_t>(static_cast<uint32_t>(static_cast<int32_t>(v))), 4);
    } else {
      op(0x8a);
      op(8);
      le(static_cast<uint64_t>(v), 8);
    }
  }
  void string(const std::string& s) {
    op('X');
    le(s.size(), 4);
    out_.insert(out_.end(), s.begin(), s.end());
  }
  void global(const std::string& module, const std::string& name) {
    op('c');
    for (const std::string& part : {module, name}) {
      out_.insert(out_.end(), part.begin(), part.end());
      op('\n');
    }
  }
  void int_tuple(const std::vector<int64_t>& values) {
    if (values.empty()) return op(')');
    op('(');
    for (int64_t v : values) integer(v);
    op('t');
  }
  std::vector<uint8_t> take() { return std::move(out_); }

 private:
  void le(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
};

}  // namespace

std::string storage_type_name(DType dtype) {
  for (const auto& s : kStorageTypes)
    if (s.dtype == dtype) return s.name;
  throw InputError("no torch storage type for this dtype");
}

PickledStateDict unpickle_state_dict(std::span<const uint8_t> pickle, const std::string& what) {
  return Unpickler(pickle, what).run();
}

bool has_legacy_torch_magic(std::span<const uint8_t> file) {
  return file.size() >= sizeof kLegacyMagic && std::memcmp(file.data(), kLegacyMagic, sizeof kLegacyMagic) == 0;
}

LegacyPickles unpickle_legacy(std::span<const uint8_t> file, const std::string& what) {
  if (!has_legacy_torch_magic(file)) throw InputError(what + ": not a legacy torch.save file (no magic number)");
  size_t at = sizeof kLegacyMagic;
  auto next = [&](const std::string& which, bool legacy_ids) {
    return std::make_unique<Unpickler>(file.subspan(at), what + " (" + which + ")", legacy_ids);
  };
  auto protocol = next("protocol version", false);
  const Ptr version = protocol->value();
  protocol->require_that(version->kind == Value::Kind::Int && version->number == 1001,
                         "legacy protocol version is not 1001");
  at += protocol->position();
  auto info = next("system info", false);
  const Ptr sys = info->value();
  bool little = false;
  if (sys->kind == Value::Kind::Dict)
    for (size_t i = 0; i + 1 < sys->items.size(); i += 2)
      if (sys->items[i]->text == "little_endian") little = sys->items[i + 1]->kind == Value::Kind::Bool && sys->items[i + 1]->number;
  info->require_that(little, "only little-endian files are read");
  at += info->position();
  LegacyPickles out;
  auto state = next("state dict", true);
  out.state = state->run();
  at += state->position();
  auto keys = next("storage keys", false);
  const Ptr list = keys->value();
  keys->require_that(list->kind == Value::Kind::List, "the storage keys are not a list");
  for (const Ptr& key : list->items) {
    keys->require_that(key->kind == Value::Kind::String, "a storage key that is not a string");
    out.keys.push_back(key->text);
  }
  at += keys->position();
  out.data_offset = at;
  return out;
}

std::vector<uint8_t> pickle_state_dict(const PickledStateDict& state) {
  Pickler p;
  p.op(0x80);
  p.op(2);
  p.global("collections", "OrderedDict");
  p.op(')');
  p.op('R');
  p.op('(');
  for (const PickledTensor& t : state.tensors) {
    const PickledStorage& s = state.storages.at(t.storage);
    p.string(t.name);
    p.global("torch._utils", "_rebuild_tensor_v2");
    p.op('(');
    p.op('(');  // the persistent id
    p.string("storage");
    p.global("torch", storage_type_name(s.dtype));
    p.string(s.key);
    p.string("cpu");
    p.integer(s.numel);
    p.op('t');
    p.op('Q');
    p.integer(t.offset);
    p.int_tuple(t.shape);
    p.int_tuple(t.stride);
    p.op(0x89);  // requires_grad False
    p.global("collections", "OrderedDict");  // no backward hooks
    p.op(')');
    p.op('R');
    p.op('t');
    p.op('R');
  }
  p.op('u');
  p.op('.');
  return p.take();
}

}  // namespace pgolf
