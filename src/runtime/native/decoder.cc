// The N-API face of the native decode path (issue 17; docs/NATIVE-DECODE.md): `create(spec)`
// maps the decoder graph's weights.bin read-only and takes the runner's shared KV-cache, RoPE and
// LoRA buffers; `step(...)` decodes one token for each row of a pass, synchronously, on the
// calling thread plus the decoder's own workers; `destroy(handle)` stops them. Every number and
// buffer of the spec is checked here (sizes against the file and the dims), so a bad spec is a
// JS exception naming the field, never a read out of bounds.
#include <cpuid.h>
#include <fcntl.h>
#include <node_api.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <stdexcept>
#include <string>

#include "step.h"

using namespace openlora;

namespace {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) throw Error("N-API call failed: " #call); \
  } while (0)

struct Mapped {
  void* base = MAP_FAILED;
  size_t size = 0;
  ~Mapped() {
    if (base != MAP_FAILED) munmap(base, size);
  }
};

// Memory for what the kernels stream every step (the Linears' weights), in transparent huge
// pages: a step reads every weight once, and over 4 KB pages that is a TLB miss and a restart of
// the hardware prefetcher every 4 KB. Measured on AMD Zen 4 (2 threads reading 400 MB): 30-32
// GB/s from 2 MB pages against 28 from 4 KB ones; the decode steps follow (docs/NATIVE-DECODE.md
// "Memory"). Chunks of at least kChunk bytes, 2 MB aligned (the kernel backs only whole aligned
// 2 MB ranges with huge pages), handed out 64-byte aligned.
struct HugeArena {
  static constexpr size_t kHuge = 2u << 20, kChunk = 64u << 20;
  std::deque<Mapped> chunks;
  uint8_t* next = nullptr;
  size_t left = 0;
  uint8_t* take(size_t bytes) {
    bytes = (bytes + 63) / 64 * 64;
    if (bytes > left) {
      const size_t size = (std::max(bytes, kChunk) + kHuge - 1) / kHuge * kHuge;
      Mapped& m = chunks.emplace_back();
      m.size = size + kHuge;
      m.base = mmap(nullptr, m.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m.base == MAP_FAILED) throw Error("cannot allocate " + std::to_string(m.size) + " bytes for the weights");
      const uintptr_t at = (reinterpret_cast<uintptr_t>(m.base) + kHuge - 1) / kHuge * kHuge;
      next = reinterpret_cast<uint8_t*>(at);
      left = size;
      madvise(next, size, MADV_HUGEPAGE);
    }
    uint8_t* p = next;
    next += bytes;
    left -= bytes;
    return p;
  }
};

struct Instance {
  std::unique_ptr<Decoder> decoder;
  Mapped file;
  bool hugePages = false;  // hot() memory from `huge` (decoder.cc hugePages)
  HugeArena huge;
  std::deque<std::vector<uint8_t>> owned;  // inline tensors, copied
  std::vector<napi_ref> refs;              // the JS buffers the decoder reads and writes
  void release(napi_env env) {
    decoder.reset();  // joins the workers
    for (napi_ref r : refs) napi_delete_reference(env, r);
    refs.clear();
  }
};

class Spec {
 public:
  Spec(napi_env env, Instance& inst) : env_(env), inst_(inst) {}
  napi_env env() const { return env_; }

  napi_value get(napi_value obj, const std::string& key) {
    bool has = false;
    CHECK(napi_has_named_property(env_, obj, key.c_str(), &has));
    if (!has) throw Error("spec." + key + " is missing");
    napi_value v;
    CHECK(napi_get_named_property(env_, obj, key.c_str(), &v));
    return v;
  }
  double number(napi_value v, const std::string& what) {
    napi_valuetype t;
    CHECK(napi_typeof(env_, v, &t));
    if (t != napi_number) throw Error(what + " must be a number");
    double d;
    CHECK(napi_get_value_double(env_, v, &d));
    return d;
  }
  int integer(napi_value obj, const std::string& key, double min, double max) {
    const double d = number(get(obj, key), "spec." + key);
    if (d != std::floor(d) || d < min || d > max)
      throw Error("spec." + key + " must be an integer in [" + std::to_string((long long)min) + ", " +
                  std::to_string((long long)max) + "], got " + std::to_string(d));
    return (int)d;
  }
  float real(napi_value obj, const std::string& key) {
    const double d = number(get(obj, key), "spec." + key);
    if (!std::isfinite(d)) throw Error("spec." + key + " must be finite");
    return (float)d;
  }
  bool boolean(napi_value obj, const std::string& key) {
    bool b;
    if (napi_get_value_bool(env_, get(obj, key), &b) != napi_ok) throw Error("spec." + key + " must be a boolean");
    return b;
  }
  std::string string(napi_value obj, const std::string& key) {
    napi_value v = get(obj, key);
    size_t n;
    if (napi_get_value_string_utf8(env_, v, nullptr, 0, &n) != napi_ok) throw Error("spec." + key + " must be a string");
    std::string s(n, '\0');
    CHECK(napi_get_value_string_utf8(env_, v, s.data(), n + 1, &n));
    return s;
  }
  uint32_t length(napi_value arr, const std::string& what) {
    bool is;
    CHECK(napi_is_array(env_, arr, &is));
    if (!is) throw Error(what + " must be an array");
    uint32_t n;
    CHECK(napi_get_array_length(env_, arr, &n));
    return n;
  }
  napi_value at(napi_value arr, uint32_t i) {
    napi_value v;
    CHECK(napi_get_element(env_, arr, i, &v));
    return v;
  }

  // A typed array the decoder keeps using (KV cache, RoPE tables, LoRA rows): held by a reference.
  float* floats(napi_value v, size_t minLength, const std::string& what) {
    napi_typedarray_type type;
    size_t len;
    void* data;
    bool is;
    CHECK(napi_is_typedarray(env_, v, &is));
    if (!is) throw Error(what + " must be a Float32Array");
    CHECK(napi_get_typedarray_info(env_, v, &type, &len, &data, nullptr, nullptr));
    if (type != napi_float32_array) throw Error(what + " must be a Float32Array");
    if (len < minLength)
      throw Error(what + " has " + std::to_string(len) + " floats; needs at least " + std::to_string(minLength));
    napi_ref ref;
    CHECK(napi_create_reference(env_, v, 1, &ref));
    inst_.refs.push_back(ref);
    return static_cast<float*>(data);
  }

  // A tensor: a byte offset into the mapped weights file, or inline data (copied); -1 = absent.
  const uint8_t* tensor(napi_value obj, const std::string& key, size_t bytes, bool optional = false) {
    napi_value v = get(obj, key);
    napi_valuetype t;
    CHECK(napi_typeof(env_, v, &t));
    if (t == napi_number) {
      const double off = number(v, "spec." + key);
      if (off == -1 && optional) return nullptr;
      if (off < 0 || off != std::floor(off) || off + (double)bytes > (double)inst_.file.size)
        throw Error("spec." + key + ": offset " + std::to_string(off) + " + " + std::to_string(bytes) +
                    " bytes is outside weights.bin (" + std::to_string(inst_.file.size) + " bytes)");
      return static_cast<const uint8_t*>(inst_.file.base) + (size_t)off;
    }
    bool is;
    CHECK(napi_is_typedarray(env_, v, &is));
    if (!is) throw Error("spec." + key + " must be a byte offset or a typed array" + (optional ? " or -1" : ""));
    napi_typedarray_type type;
    size_t len;
    void* data;
    napi_value ab;
    size_t off;
    CHECK(napi_get_typedarray_info(env_, v, &type, &len, &data, &ab, &off));
    size_t have = type == napi_float32_array ? len * 4 : type == napi_uint8_array ? len : 0;
    if (have != bytes)
      throw Error("spec." + key + " has " + std::to_string(have) + " bytes (Float32Array or Uint8Array); needs " +
                  std::to_string(bytes));
    uint8_t* p = owned(bytes);
    std::memcpy(p, data, bytes);
    return p;
  }

  // An fp16 copy of int4 scales, which the quantizer keeps fp16-exact (graph/quantize4.ts): the
  // kernel then reads half the scale bytes and computes exactly what ORT computes. A scale that
  // is not an fp16 value means a graph from another quantizer: refused, so `auto` uses ORT.
  const uint16_t* halves(const float* scales, size_t n, const std::string& name) {
    auto* out = reinterpret_cast<uint16_t*>(owned(n * 2));
    halvesInto(scales, n, name, out);
    return out;
  }
  static void halvesInto(const float* scales, size_t n, const std::string& name, uint16_t* out) {
    for (size_t i = 0; i < n; i++) {
      const float f = scales[i];
      out[i] = toHalf(f);
      if (fromHalf(out[i]) != f)
        throw Error(name + ": int4 scale " + std::to_string(f) + " is not an fp16 value (a graph from an older quantizer: rebuild it)");
    }
  }

  // `bytes` of memory the kernels stream each step: in huge pages where the instance uses them
  uint8_t* hot(size_t bytes) { return inst_.hugePages ? inst_.huge.take(bytes) : owned(bytes); }
  template <typename T>
  const T* hotCopy(const T* from, size_t count) {
    auto* to = reinterpret_cast<T*>(hot(count * sizeof(T)));
    std::memcpy(to, from, count * sizeof(T));
    return to;
  }

  // `bytes` of memory the instance owns, 64-byte aligned like the file's tensors
  uint8_t* owned(size_t bytes) {
    auto& copy = inst_.owned.emplace_back(bytes + 64);
    return copy.data() + (64 - (reinterpret_cast<uintptr_t>(copy.data()) & 63)) % 64;
  }

  Linear linear(napi_value obj, const std::string& name, int format, int K, int N) {
    Linear L;
    L.K = integer(obj, "K", K, K);
    L.N = integer(obj, "N", N, N);
    const std::string p = name + ".";
    if (format == FP32) {
      L.rows = boolean(obj, "rows");
      L.w = reinterpret_cast<const float*>(tensor(obj, "weight", (size_t)K * N * 4));
      return L;
    }
    L.block = format == INT4 ? integer(obj, "block", 32, 32) : integer(obj, "block", 16, 128);
    if (L.block & (L.block - 1)) throw Error(p + "block must be a power of two");
    L.kb = (K + L.block - 1) / L.block;
    const size_t codes = (size_t)N * L.kb * (format == INT4 ? L.block / 2 : L.block);
    L.q = tensor(obj, "weight", codes);
    L.scales = reinterpret_cast<const float*>(tensor(obj, "scales", (size_t)N * L.kb * 4));
    if (format == INT4) L.zp = tensor(obj, "zeros", (size_t)N * ((L.kb + 1) / 2));
    return L;
  }

 private:
  napi_env env_;
  Instance& inst_;
};

void mapFile(Instance& inst, const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || st.st_size == 0) {
    close(fd);
    throw Error(path + " is empty or unreadable");
  }
  inst.file.size = (size_t)st.st_size;
  inst.file.base = mmap(nullptr, inst.file.size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (inst.file.base == MAP_FAILED) throw Error("cannot map " + path + ": " + std::strerror(errno));
  madvise(inst.file.base, inst.file.size, MADV_WILLNEED);
}

// int4 scales as fp16 (Linear::scales16) when the model's int4 weights are larger than the
// last-level cache. Measured on the 2-core Xeon (300 MB L3): smollm2-135m's 86 MB of int4 weights
// stay in the cache and its step is bound by instructions, where converting the scales cost ~5 %;
// a 1B model streams ~0.8 GB from memory per token, where the bytes saved count. An unknown cache
// size counts as small. OPENLORA_NATIVE_HALF_SCALES=always|never overrides (tests, benchmarks).
void halfScalesBeyondCache(Spec& s, Decoder& dec) {
  std::vector<Linear*> all{&dec.lmHead};
  for (Layer& l : dec.layers) all.insert(all.end(), {&l.qkv, &l.o, &l.gateUp, &l.down});
  double bytes = 0;
  for (const Linear* L : all) bytes += (double)L->N * L->kb * (16 + 4.5);
  const long llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
  const char* force = getenv("OPENLORA_NATIVE_HALF_SCALES");
  const bool half = force && std::strcmp(force, "always") == 0   ? true
                    : force && std::strcmp(force, "never") == 0 ? false
                                                                 : llc > 0 && bytes > (double)llc;
  if (!half) return;
  for (Linear* L : all)
    if (L->tiles == nullptr) L->scales16 = s.halves(L->scales, (size_t)L->N * L->kb, "an int4 Linear");
}

bool genuineIntel() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  __get_cpuid(0, &a, &b, &c, &d);
  return b == 0x756e6547 && d == 0x49656e69 && c == 0x6c65746e;  // "GenuineIntel"
}

// A kernel choice measured per CPU: `env` set to `yes` or `no` overrides (tests, A/B runs),
// otherwise what was measured faster on this vendor's CPUs.
bool cpuChoice(const char* env, const char* yes, const char* no, bool onIntel) {
  const char* force = getenv(env);
  if (force && std::strcmp(force, yes) == 0) return true;
  if (force && std::strcmp(force, no) == 0) return false;
  return genuineIntel() ? onIntel : !onIntel;
}

// How a decode step of one row splits fp32 [K, N] Linears between threads (Decoder::linear): by
// columns on Intel CPUs, by rows elsewhere. OPENLORA_NATIVE_ONE_ROW=rows|columns overrides.
bool oneRowByRows() { return cpuChoice("OPENLORA_NATIVE_ONE_ROW", "rows", "columns", false); }

// Which kernel a batch of 4-8 fp32 rows runs (Decoder::linear): kernels.h gemmAcross off Intel,
// gemmF32 (measured there, on an EMR Xeon) on Intel. OPENLORA_NATIVE_BATCH=across|panels overrides.
bool batchAcross() { return cpuChoice("OPENLORA_NATIVE_BATCH", "across", "panels", false); }

// Where the kernels prefetch weights ahead of use (kernels.h prefetchAhead): L2 off Intel, L1 on
// Intel (measured there). OPENLORA_NATIVE_PREFETCH=l2|l1 overrides.
bool aheadToL2() { return cpuChoice("OPENLORA_NATIVE_PREFETCH", "l2", "l1", false); }

// Whether the Linears' weights live in transparent huge pages (HugeArena): where the kernel
// offers them (/sys/kernel/mm/transparent_hugepage/enabled is `always` or `madvise`).
// OPENLORA_NATIVE_HUGE_PAGES=always|never overrides.
bool hugePages() {
  const char* force = getenv("OPENLORA_NATIVE_HUGE_PAGES");
  if (force && std::strcmp(force, "always") == 0) return true;
  if (force && std::strcmp(force, "never") == 0) return false;
  char mode[128] = {};
  FILE* f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
  if (f == nullptr) return false;
  const size_t n = fread(mode, 1, sizeof(mode) - 1, f);
  fclose(f);
  mode[n] = 0;
  return std::strstr(mode, "[always]") != nullptr || std::strstr(mode, "[madvise]") != nullptr;
}

// The bytes each Linear's kernel streams, copied out of the mapped file into huge pages (int4
// tiles are allocated there already): the file's pages are 4 KB. The mapping keeps serving what
// a step reads a row of (the embedding) or little of (norms, biases).
void hotCopies(Spec& s, Decoder& dec) {
  std::vector<Linear*> all{&dec.lmHead};
  for (Layer& l : dec.layers) all.insert(all.end(), {&l.qkv, &l.o, &l.gateUp, &l.down});
  for (Linear* L : all) {
    const size_t N = L->N;
    if (L->w != nullptr) {
      // with bf16 halves the kernels read those (already in huge pages); w serves scalar tails
      if (L->w16 == nullptr) L->w = s.hotCopy(L->w, (size_t)L->K * N);
      continue;
    }
    if (L->tiles != nullptr) continue;
    const size_t blocks = N * L->kb;
    L->q = s.hotCopy(L->q, blocks * (L->zp ? L->block / 2 : L->block));
    if (L->scales16)
      L->scales16 = s.hotCopy(L->scales16, blocks);
    else
      L->scales = s.hotCopy(L->scales, blocks);
    if (L->zp) L->zp = s.hotCopy(L->zp, N * ((L->kb + 1) / 2));
  }
}

// The top halves of fp32 Linears whose every weight is a bf16 value (Linear::w16), which the SIMD
// kernels then read instead of w: a checkpoint stored in bf16 (most are, and the benchmarks'
// fixtures) widened to fp32 at build time carries 16 zero bits a weight, and a decode step that
// streams every weight once reads half the bytes for the same fp32 sums. A Linear with any other
// value keeps w alone. w stays in the mapped file for the kernels' scalar tails (hotCopies skips
// it), so such a model's engine holds 2 bytes a weight.
// OPENLORA_NATIVE_BF16=never skips it; =always refuses an engine with an fp32 Linear that is not
// all bf16 values (tests: so that a fallback cannot pass for the halves).
void bf16Halves(Spec& s, Decoder& dec) {
#if OPENLORA_VNNI
  const char* force = getenv("OPENLORA_NATIVE_BF16");
  if (force && std::strcmp(force, "never") == 0) return;
  const bool must = force && std::strcmp(force, "always") == 0;
  std::vector<std::pair<Linear*, std::string>> all{{&dec.lmHead, "lm_head"}};
  for (size_t i = 0; i < dec.layers.size(); i++) {
    Layer& l = dec.layers[i];
    const std::string p = "layer " + std::to_string(i) + " ";
    all.insert(all.end(), {{&l.qkv, p + "qkv"}, {&l.o, p + "o"}, {&l.gateUp, p + "gate|up"}, {&l.down, p + "down"}});
  }
  for (auto& [L, name] : all) {
    if (L->w == nullptr) continue;
    const size_t n = (size_t)L->K * L->N;
    const auto* bits = reinterpret_cast<const uint32_t*>(L->w);
    size_t i = 0;
    while (i < n && (bits[i] & 0xffffu) == 0) i++;
    if (i < n) {
      if (must) throw Error(name + ": an fp32 weight is not a bf16 value, which the bf16 halves need (OPENLORA_NATIVE_BF16=always)");
      continue;
    }
    auto* out = reinterpret_cast<uint16_t*>(s.hot(n * 2));
    for (size_t j = 0; j < n; j++) out[j] = (uint16_t)(bits[j] >> 16);
    L->w16 = out;
  }
#else
  (void)s, (void)dec;
#endif
}

// int4 Linears as tiles of 16 rows (kernels.h int4Tiles, the faster kernel) where the SIMD kernels
// run and the shape allows: N a multiple of 16, and for gate|up the intermediate width too (a
// thread's columns of each half start at multiples of 16). The tiles are a copy (the mapped file
// keeps ORT's layout), the same bytes again: 0.547 bytes a weight. Any other int4 Linear keeps the
// row-major layout and kernel, as does one whose scales the tiles cannot hold (kernels.h
// tileInt4Fits: not q · d in superblocks, as graph/quantize4.ts makes them).
// OPENLORA_NATIVE_INT4_TILES=never keeps it everywhere; =always refuses to create an engine whose
// tileable Linears' scales do not fit (tests: so that a fallback cannot pass for the tiles).
void int4Layout(Spec& s, Decoder& dec, bool trial) {
#if OPENLORA_VNNI
  const char* force = getenv("OPENLORA_NATIVE_INT4_TILES");
  if (!(force && std::strcmp(force, "never") == 0)) {
    const bool must = force && std::strcmp(force, "always") == 0;
    auto tile = [&](Linear& L, const std::string& name, bool fits) {
      if (!fits || L.N % kTileRows != 0) return;  // row-major
      if (!tileInt4Fits(L)) {
        if (must)
          throw Error(name + ": int4 scales are not q · d in superblocks of 8 blocks, which the tiles need (OPENLORA_NATIVE_INT4_TILES=always)");
        return;  // row-major
      }
      if (trial) return;
      L.groupBytes = int4TileGroupBytes(L.kb);
      uint8_t* out = s.hot(L.groupBytes * (L.N / kTileRows));
      tileInt4(L, out);
      L.tiles = out;
    };
    tile(dec.lmHead, "lmHead", true);
    for (size_t l = 0; l < dec.layers.size(); l++) {
      Layer& L = dec.layers[l];
      const std::string p = "layer[" + std::to_string(l) + "]";
      tile(L.qkv, p + ".qkv", true);
      tile(L.o, p + ".o", true);
      tile(L.gateUp, p + ".gateUp", dec.d_.inter % kTileRows == 0);
      tile(L.down, p + ".down", true);
    }
  }
#else
  (void)trial;
#endif
  halfScalesBeyondCache(s, dec);
}

// Whether int4/int8 prompt chunks run on an int8 copy of the weights (amx.h): on AMX where the CPU
// grants it, else on AVX-512 VNNI (the 1B int4 32-token prompt on AMD Zen 4: see
// docs/NATIVE-DECODE.md "Prompts"). OPENLORA_NATIVE_INT8_COPY=never keeps the decode layout's
// kernels for prompts too (A/B runs, tests).
bool int8PromptCopy() {
  const char* v = getenv("OPENLORA_NATIVE_INT8_COPY");
  if (v != nullptr && std::strcmp(v, "never") == 0) return false;
#if OPENLORA_AMX
  if (amxPermitted()) return true;
#endif
  return OPENLORA_VNNI != 0;
}

// The int8 copies prompt chunks read (amx.h), for int4 and int8 Linears whose columns come in 16s
// (and for gate|up whose halves do), when the engine runs prompts (promptRows > 0) on AMX or AVX-512
// VNNI (int8PromptCopy): +1 byte a weight beside the decode layout. The LM head keeps the
// decode kernels (it runs for one row a prompt). Built on `threads` threads, split by groups.
void int8CopyLayout(Spec& s, Decoder& dec, int threads, bool trial) {
#if OPENLORA_VNNI
  const Dims& d = dec.d_;
  if (trial || d.promptRows == 0 || d.format == FP32 || !int8PromptCopy()) return;
  std::vector<Linear*> todo;
  for (Layer& l : dec.layers) {
    for (Linear* L : {&l.qkv, &l.o, &l.down})
      if (L->N % 16 == 0) todo.push_back(L);
    if (d.inter % 16 == 0) todo.push_back(&l.gateUp);
  }
  for (Linear* L : todo) {
    L->int8CopyChunks = (L->K + 63) / 64;
    L->int8Copy = reinterpret_cast<const int8_t*>(s.owned((size_t)L->N * L->int8CopyChunks * 64));
    L->int8CopyScale = reinterpret_cast<const float*>(s.owned((size_t)L->N * 4));
    L->int8CopySum = reinterpret_cast<const float*>(s.owned((size_t)L->N * 4));
  }
  auto work = [&](int t) {
    std::vector<float> scratch;
    for (Linear* L : todo) {
      scratch.resize((size_t)L->int8CopyChunks * 64);
      int g0, g1;
      share(L->N / 16, t, threads, 1, g0, g1);
      buildInt8CopyGroups(*L, g0, g1, const_cast<int8_t*>(L->int8Copy), const_cast<float*>(L->int8CopyScale),
                      const_cast<float*>(L->int8CopySum), scratch.data());
    }
  };
  std::vector<std::thread> helpers;
  for (int t = 1; t < threads; t++) helpers.emplace_back(work, t);
  work(0);
  for (auto& h : helpers) h.join();
  dec.int8Copy_ = !todo.empty();
#else
  (void)s, (void)dec, (void)threads, (void)trial;
#endif
}

void build(Spec& s, napi_value spec, Instance& inst) {
  Dims d;
  d.format = s.integer(spec, "format", 0, 2);
  const int threads = s.integer(spec, "threads", 1, 256);
  d.hidden = s.integer(spec, "hidden", 1, 1 << 16);
  d.heads = s.integer(spec, "heads", 1, 1024);
  d.kvHeads = s.integer(spec, "kvHeads", 1, d.heads);
  if (d.heads % d.kvHeads) throw Error("spec.heads must be a multiple of spec.kvHeads");
  d.D = s.integer(spec, "headDim", 2, 512);
  if (d.D % 2) throw Error("spec.headDim must be even");
  d.inter = s.integer(spec, "intermediate", 1, 1 << 18);
  d.vocab = s.integer(spec, "vocab", 1, 1 << 24);
  d.layers = s.integer(spec, "layers", 1, 1024);
  d.eps = s.real(spec, "eps");
  d.attnScale = s.real(spec, "attnScale");
  d.window = s.integer(spec, "window", 0, 1 << 30);
  d.maxRows = s.integer(spec, "maxRows", 1, 4096);
  d.capacity = s.integer(spec, "capacity", 1, 1 << 24);
  bool hasPrompt = false;
  CHECK(napi_has_named_property(s.env(), spec, "promptRows", &hasPrompt));
  d.promptRows = hasPrompt ? s.integer(spec, "promptRows", 0, 4096) : 0;
  const int F = d.format, H = d.hidden, I = d.inter, V = d.vocab;
  const int qOut = d.heads * d.D, kvOut = d.kvHeads * d.D;

  auto dec = std::make_unique<Decoder>(d, threads);
  dec->embed = reinterpret_cast<const float*>(s.tensor(spec, "embed", (size_t)V * H * 4));
  dec->finalNorm = reinterpret_cast<const float*>(s.tensor(spec, "finalNorm", (size_t)H * 4));
  dec->lmHead = s.linear(s.get(spec, "lmHead"), "lmHead", F, H, V);
  const size_t half = d.D / 2;
  napi_value cos = s.get(spec, "ropeCos"), sin = s.get(spec, "ropeSin");
  const size_t ropeFloats = half * d.capacity;
  dec->ropeCos = s.floats(cos, ropeFloats, "spec.ropeCos");
  dec->ropeSin = s.floats(sin, ropeFloats, "spec.ropeSin");

  napi_value layers = s.get(spec, "layer"), keys = s.get(spec, "keys"), values = s.get(spec, "values");
  const size_t kvFloats = (size_t)d.maxRows * d.kvHeads * d.capacity * d.D;
  if (s.length(layers, "spec.layer") != (uint32_t)d.layers || s.length(keys, "spec.keys") != (uint32_t)d.layers ||
      s.length(values, "spec.values") != (uint32_t)d.layers)
    throw Error("spec.layer, spec.keys and spec.values must have one entry per layer");
  dec->layers.resize(d.layers);
  auto f32 = [](const uint8_t* p) { return reinterpret_cast<const float*>(p); };
  for (int l = 0; l < d.layers; l++) {
    napi_value o = s.at(layers, l);
    Layer& L = dec->layers[l];
    const std::string p = "layer[" + std::to_string(l) + "]";
    L.inputNorm = f32(s.tensor(o, "inputNorm", (size_t)H * 4));
    L.mlpNorm = f32(s.tensor(o, "mlpNorm", (size_t)H * 4));
    L.qkv = s.linear(s.get(o, "qkv"), p + ".qkv", F, H, qOut + 2 * kvOut);
    L.o = s.linear(s.get(o, "o"), p + ".o", F, qOut, H);
    L.gateUp = s.linear(s.get(o, "gateUp"), p + ".gateUp", F, H, 2 * I);
    L.down = s.linear(s.get(o, "down"), p + ".down", F, I, H);
    L.qkvBias = f32(s.tensor(o, "qkvBias", (size_t)(qOut + 2 * kvOut) * 4, true));
    L.oBias = f32(s.tensor(o, "oBias", (size_t)H * 4, true));
    L.gateUpBias = f32(s.tensor(o, "gateUpBias", (size_t)2 * I * 4, true));
    L.downBias = f32(s.tensor(o, "downBias", (size_t)H * 4, true));
    L.keys = s.floats(s.at(keys, l), kvFloats, "spec.keys[" + std::to_string(l) + "]");
    L.values = s.floats(s.at(values, l), kvFloats, "spec.values[" + std::to_string(l) + "]");
  }

  napi_value loras = s.get(spec, "lora");
  const uint32_t nl = s.length(loras, "spec.lora");
  const int shapes[T_COUNT][2] = {{H, qOut}, {H, kvOut}, {H, kvOut}, {qOut, H}, {H, I}, {H, I}, {I, H}};
  for (uint32_t i = 0; i < nl; i++) {
    napi_value o = s.at(loras, i);
    const int l = s.integer(o, "layer", 0, d.layers - 1);
    const int t = s.integer(o, "target", 0, T_COUNT - 1);
    Lora& r = dec->layers[l].lora[t];
    r.rank = s.integer(o, "rank", 1, 4096);
    r.in = s.integer(o, "in", shapes[t][0], shapes[t][0]);
    r.out = s.integer(o, "out", shapes[t][1], shapes[t][1]);
    const std::string p = "spec.lora[" + std::to_string(i) + "]";
    r.a = s.floats(s.get(o, "a"), (size_t)d.maxRows * r.in * r.rank, p + ".a");
    r.b = s.floats(s.get(o, "b"), (size_t)d.maxRows * r.rank * r.out, p + ".b");
  }
  bool has = false;
  CHECK(napi_has_named_property(s.env(), spec, "profile", &has));
  dec->profiling_ = has && s.boolean(spec, "profile");
  CHECK(napi_has_named_property(s.env(), spec, "trial", &has));
  const bool trial = has && s.boolean(spec, "trial");
  dec->oneRowByRows_ = oneRowByRows();
  dec->batchAcross_ = batchAcross();
  const bool toL2 = aheadToL2();
  dec->lmHead.aheadToL2 = toL2;
  for (Layer& l : dec->layers)
    for (Linear* L : {&l.qkv, &l.o, &l.gateUp, &l.down}) L->aheadToL2 = toL2;
  inst.hugePages = !trial && hugePages();
  if (F == INT4) int4Layout(s, *dec, trial);
  if (F == FP32 && !trial) bf16Halves(s, *dec);
  if (inst.hugePages) hotCopies(s, *dec);
  int8CopyLayout(s, *dec, threads, trial);
  dec->prepare();
  inst.decoder = std::move(dec);
}

void finalize(napi_env env, void* data, void*) {
  auto* inst = static_cast<Instance*>(data);
  inst->release(env);
  delete inst;
}

napi_value throwError(napi_env env, const std::exception& e) {
  napi_throw_error(env, "NATIVE_DECODE", e.what());
  return nullptr;
}

napi_value Create(napi_env env, napi_callback_info info) {
  try {
    size_t argc = 1;
    napi_value spec;
    CHECK(napi_get_cb_info(env, info, &argc, &spec, nullptr, nullptr));
    if (argc < 1) throw Error("create(spec): spec is missing");
    auto inst = std::make_unique<Instance>();
    Spec s(env, *inst);
    mapFile(*inst, s.string(spec, "weightsPath"));
    try {
      build(s, spec, *inst);
    } catch (...) {
      inst->release(env);
      throw;
    }
    napi_value handle;
    CHECK(napi_create_external(env, inst.get(), finalize, nullptr, &handle));
    inst.release();
    return handle;
  } catch (const std::exception& e) {
    return throwError(env, e);
  }
}

Instance* instanceOf(napi_env env, napi_value v) {
  napi_valuetype t;
  CHECK(napi_typeof(env, v, &t));
  if (t != napi_external) throw Error("the first argument must be a handle from create()");
  void* data;
  CHECK(napi_get_value_external(env, v, &data));
  auto* inst = static_cast<Instance*>(data);
  if (!inst->decoder) throw Error("this decoder was destroyed");
  return inst;
}

template <typename T>
T* typedArg(napi_env env, napi_value v, napi_typedarray_type want, size_t minLength, const char* what) {
  bool is;
  CHECK(napi_is_typedarray(env, v, &is));
  napi_typedarray_type type;
  size_t len = 0;
  void* data = nullptr;
  if (is) CHECK(napi_get_typedarray_info(env, v, &type, &len, &data, nullptr, nullptr));
  if (!is || type != want) throw Error(std::string(what) + " has the wrong type");
  if (len < minLength) throw Error(std::string(what) + " is too short: " + std::to_string(len) + " < " + std::to_string(minLength));
  return static_cast<T*>(data);
}

// step(handle, lo, n, capacity, ids: Int32Array, pos: Int32Array, logits: Float32Array)
napi_value Step(napi_env env, napi_callback_info info) {
  try {
    size_t argc = 7;
    napi_value a[7];
    CHECK(napi_get_cb_info(env, info, &argc, a, nullptr, nullptr));
    if (argc < 7) throw Error("step(handle, lo, n, capacity, ids, pos, logits) takes 7 arguments");
    Instance* inst = instanceOf(env, a[0]);
    const Dims& d = inst->decoder->d_;
    int32_t lo, n, cap;
    CHECK(napi_get_value_int32(env, a[1], &lo));
    CHECK(napi_get_value_int32(env, a[2], &n));
    CHECK(napi_get_value_int32(env, a[3], &cap));
    if (lo < 0 || n < 1 || lo + n > d.maxRows) throw Error("rows [lo, lo + n) must lie within [0, maxRows)");
    if (cap < 1 || cap > d.capacity) throw Error("capacity must be in [1, spec.capacity]");
    const int32_t* ids = typedArg<int32_t>(env, a[4], napi_int32_array, n, "ids (Int32Array)");
    const int32_t* pos = typedArg<int32_t>(env, a[5], napi_int32_array, n, "pos (Int32Array)");
    float* logits = typedArg<float>(env, a[6], napi_float32_array, (size_t)n * d.vocab, "logits (Float32Array)");
    for (int i = 0; i < n; i++) {
      if (pos[i] < 0) continue;
      if (ids[i] < 0 || ids[i] >= d.vocab) throw Error("token id " + std::to_string(ids[i]) + " is outside the vocabulary");
      if (pos[i] >= cap) throw Error("position " + std::to_string(pos[i]) + " does not fit capacity " + std::to_string(cap));
    }
    inst->decoder->step(lo, n, cap, ids, pos, logits);
    return nullptr;
  } catch (const std::exception& e) {
    return throwError(env, e);
  }
}

// pass(handle, capacity, kv: Int32Array, pos: Int32Array, ids: Int32Array, out: Int32Array,
//      logits: Float32Array): a prompt pass of kv.length token rows (Decoder::pass)
napi_value Pass(napi_env env, napi_callback_info info) {
  try {
    size_t argc = 7;
    napi_value a[7];
    CHECK(napi_get_cb_info(env, info, &argc, a, nullptr, nullptr));
    if (argc < 7) throw Error("pass(handle, capacity, kv, pos, ids, out, logits) takes 7 arguments");
    Instance* inst = instanceOf(env, a[0]);
    const Dims& d = inst->decoder->d_;
    if (d.promptRows < 1) throw Error("this decoder was created without spec.promptRows: it runs no prompt passes");
    int32_t cap;
    CHECK(napi_get_value_int32(env, a[1], &cap));
    if (cap < 1 || cap > d.capacity) throw Error("capacity must be in [1, spec.capacity]");
    size_t M = 0;
    {
      napi_typedarray_type type;
      bool is;
      CHECK(napi_is_typedarray(env, a[2], &is));
      if (!is) throw Error("kv must be an Int32Array");
      CHECK(napi_get_typedarray_info(env, a[2], &type, &M, nullptr, nullptr, nullptr));
    }
    if (M < 1 || M > (1 << 24)) throw Error("a prompt pass needs at least one row (kv.length)");
    const int32_t* kv = typedArg<int32_t>(env, a[2], napi_int32_array, M, "kv (Int32Array)");
    const int32_t* pos = typedArg<int32_t>(env, a[3], napi_int32_array, M, "pos (Int32Array)");
    const int32_t* ids = typedArg<int32_t>(env, a[4], napi_int32_array, M, "ids (Int32Array)");
    const int32_t* out = typedArg<int32_t>(env, a[5], napi_int32_array, M, "out (Int32Array)");
    size_t lines = 0;
    {
      napi_typedarray_type type;
      bool is;
      CHECK(napi_is_typedarray(env, a[6], &is));
      if (is) CHECK(napi_get_typedarray_info(env, a[6], &type, &lines, nullptr, nullptr, nullptr));
      lines /= d.vocab;
    }
    float* logits = typedArg<float>(env, a[6], napi_float32_array, lines * d.vocab, "logits (Float32Array)");
    for (size_t m = 0; m < M; m++) {
      if (kv[m] < 0 || kv[m] >= d.maxRows) throw Error("kv row " + std::to_string(kv[m]) + " is outside [0, maxRows)");
      if (ids[m] < 0 || ids[m] >= d.vocab) throw Error("token id " + std::to_string(ids[m]) + " is outside the vocabulary");
      if (pos[m] < 0 || pos[m] >= cap) throw Error("position " + std::to_string(pos[m]) + " does not fit capacity " + std::to_string(cap));
      if (out[m] < -1 || out[m] >= (int64_t)lines) throw Error("logits line " + std::to_string(out[m]) + " is outside the logits buffer");
    }
    inst->decoder->pass((int)M, kv, pos, ids, out, cap, logits);
    return nullptr;
  } catch (const std::exception& e) {
    return throwError(env, e);
  }
}

napi_value Destroy(napi_env env, napi_callback_info info) {
  try {
    size_t argc = 1;
    napi_value h;
    CHECK(napi_get_cb_info(env, info, &argc, &h, nullptr, nullptr));
    if (argc < 1) throw Error("destroy(handle): handle is missing");
    instanceOf(env, h)->release(env);
    return nullptr;
  } catch (const std::exception& e) {
    return throwError(env, e);
  }
}

// profile(handle): µs of wall time per phase summed over the steps since create, and the step
// count; zeros unless the spec asked for `profile: true`.
napi_value Profile(napi_env env, napi_callback_info info) {
  try {
    size_t argc = 1;
    napi_value h;
    CHECK(napi_get_cb_info(env, info, &argc, &h, nullptr, nullptr));
    if (argc < 1) throw Error("profile(handle): handle is missing");
    Decoder& d = *instanceOf(env, h)->decoder;
    napi_value o;
    CHECK(napi_create_object(env, &o));
    for (int p = 0; p < PH_COUNT; p++) {
      napi_value v;
      CHECK(napi_create_double(env, d.profile_[p], &v));
      CHECK(napi_set_named_property(env, o, kPhaseNames[p], v));
    }
    return o;
  } catch (const std::exception& e) {
    return throwError(env, e);
  }
}

// readBandwidth(bytes, threads): GB/s with which `threads` threads read a `bytes` buffer (each its
// own contiguous slice, summed 64 bytes at a time), best of three passes. The ceiling a batch-1
// decode step's weight reads can reach (bench:vs-llamacpp's bound); a copy measures less, since
// its write half costs as much as its read.
napi_value ReadBandwidth(napi_env env, napi_callback_info info) {
  try {
    size_t argc = 2;
    napi_value a[2];
    CHECK(napi_get_cb_info(env, info, &argc, a, nullptr, nullptr));
    double bytesD;
    int32_t threads;
    if (argc < 2 || napi_get_value_double(env, a[0], &bytesD) != napi_ok ||
        napi_get_value_int32(env, a[1], &threads) != napi_ok || bytesD < (1 << 20) || bytesD > 64.0 * (1 << 30) ||
        threads < 1 || threads > 256)
      throw Error("readBandwidth(bytes in [1 MiB, 64 GiB], threads in [1, 256])");
    const size_t n = (size_t)bytesD / 64 / threads * threads;  // 64-byte lines, an equal share each
    std::vector<uint64_t> buf(n * 8, 1);
    std::vector<uint64_t> sums(threads);
    double best = 0;
    for (int pass = 0; pass < 3; pass++) {
      const auto t0 = std::chrono::steady_clock::now();
      std::vector<std::thread> ts;
      for (int t = 0; t < threads; t++)
        ts.emplace_back([&, t] {
          const uint64_t* p = buf.data() + (n / threads) * t * 8;
          const size_t lines = n / threads;
          uint64_t total = 0;
          size_t i = 0;
#if OPENLORA_VNNI
          __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
          for (; i + 4 <= lines; i += 4) {
            a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i * 8));
            a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(p + i * 8 + 8));
            a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(p + i * 8 + 16));
            a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(p + i * 8 + 24));
          }
          total = _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
#endif
          for (; i < lines; i++)
            for (int k = 0; k < 8; k++) total += p[i * 8 + k];
          sums[t] = total;
        });
      for (auto& t : ts) t.join();
      const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, (double)n * 64 / sec / 1e9);
    }
    for (uint64_t v : sums)
      if (v != n / threads * 8) throw Error("readBandwidth: the buffer did not read back");
    napi_value out;
    CHECK(napi_create_double(env, best, &out));
    return out;
  } catch (const std::exception& e) {
    return throwError(env, e);
  }
}

// gemmF32(x, w, M, K, N, j0, j1, y, halves): y[m][j0, j1) = x[m] · W[:, j] by kernels.h gemmF32
// over fp32 [K, N] weights (halves: through their bf16 top halves, which then must be all of each
// weight), the prompt chunks' fp32 GEMM, for tests to check its strips, k blocks, masked columns
// and row remainders against a plain sum. Only builds with the AVX-512 kernels have it.
napi_value GemmF32(napi_env env, napi_callback_info info) {
  try {
    size_t argc = 9;
    napi_value a[9];
    CHECK(napi_get_cb_info(env, info, &argc, a, nullptr, nullptr));
    if (argc < 9) throw Error("gemmF32(x, w, M, K, N, j0, j1, y, halves) takes 9 arguments");
#if OPENLORA_VNNI
    int32_t M, K, N, j0, j1;
    bool halves;
    if (napi_get_value_int32(env, a[2], &M) != napi_ok || napi_get_value_int32(env, a[3], &K) != napi_ok ||
        napi_get_value_int32(env, a[4], &N) != napi_ok || napi_get_value_int32(env, a[5], &j0) != napi_ok ||
        napi_get_value_int32(env, a[6], &j1) != napi_ok || napi_get_value_bool(env, a[8], &halves) != napi_ok)
      throw Error("gemmF32: M, K, N, j0, j1 must be integers and halves a boolean");
    if (M < 1 || K < 1 || N < 1 || M > 4096 || K > 65536 || N > 65536 || j0 < 0 || j0 >= j1 || j1 > N)
      throw Error("gemmF32: needs 1 ≤ M ≤ 4096, 1 ≤ K, N ≤ 65536 and 0 ≤ j0 < j1 ≤ N");
    const float* x = typedArg<float>(env, a[0], napi_float32_array, (size_t)M * K, "x (Float32Array, M · K)");
    const float* w = typedArg<float>(env, a[1], napi_float32_array, (size_t)K * N, "w (Float32Array, K · N)");
    float* y = typedArg<float>(env, a[7], napi_float32_array, (size_t)M * N, "y (Float32Array, M · N)");
    std::vector<uint16_t> w16;
    Linear L;
    L.K = K, L.N = N, L.w = w, L.aheadToL2 = aheadToL2();
    if (halves) {
      w16.resize((size_t)K * N);
      for (size_t i = 0; i < w16.size(); i++) {
        uint32_t bits;
        std::memcpy(&bits, w + i, 4);
        if ((bits & 0xFFFF) != 0) throw Error("gemmF32: halves needs weights that are bf16 values");
        w16[i] = (uint16_t)(bits >> 16);
      }
      L.w16 = w16.data();
    }
    gemmF32(L, M, x, K, j0, j1, y, N);
    napi_value undefined;
    CHECK(napi_get_undefined(env, &undefined));
    return undefined;
#else
    throw Error("gemmF32: this build has no AVX-512 kernels (info().simd is \"generic\")");
#endif
  } catch (const std::exception& e) {
    return throwError(env, e);
  }
}

// info(): the kernels this build runs: `simd` (AVX-512 VNNI or plain loops) and `amx` (int4 and
// int8 prompt chunks on AMX: built with it, the kernel granted its tile state, not turned off)
napi_value Info(napi_env env, napi_callback_info) {
  napi_value o, simd, amx;
  napi_create_object(env, &o);
  napi_create_string_utf8(env, OPENLORA_VNNI ? "avx512vnni" : "generic", NAPI_AUTO_LENGTH, &simd);
  napi_set_named_property(env, o, "simd", simd);
#if OPENLORA_AMX
  napi_get_boolean(env, amxPermitted(), &amx);
#else
  napi_get_boolean(env, false, &amx);
#endif
  napi_set_named_property(env, o, "amx", amx);
  return o;
}

}  // namespace

NAPI_MODULE_INIT() {
  const std::pair<const char*, napi_callback> fns[] = {
      {"create", Create}, {"step", Step}, {"pass", Pass}, {"destroy", Destroy}, {"profile", Profile},
      {"readBandwidth", ReadBandwidth}, {"info", Info}, {"gemmF32", GemmF32}};
  for (const auto& [name, fn] : fns) {
    napi_value f;
    napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, nullptr, &f);
    napi_set_named_property(env, exports, name, f);
  }
  return exports;
}
