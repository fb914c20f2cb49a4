// One decode step of a Llama-shaped decoder (RMS norms, rotate-half RoPE, grouped-query attention,
// SiLU-gated MLP, optional q/k/v/o/MLP biases, per-row LoRA) over the decoder graph's own weights,
// KV cache and LoRA buffers: the same computation as graph/decoder.ts's graph for one new token a
// row, in ~5 phases a layer instead of ~20 ONNX Runtime kernels (issue 17: per-kernel overhead,
// not bytes, dominated ORT's decode step). Rows are independent; threads split each phase's
// output columns (or heads) and meet at barriers (pool.h).
#pragma once
#include <cmath>
#include <cstdint>
#include <chrono>
#include <initializer_list>
#include <utility>
#include <vector>
#include "amx.h"
#include "kernels.h"
#include "pool.h"

namespace openlora {

enum Target { T_Q = 0, T_K, T_V, T_O, T_GATE, T_UP, T_DOWN, T_COUNT };

// What a step's wall time went to, measured on thread 0 from one phase's end to the next (so a
// phase includes waiting for the slowest thread): `profile(handle)` in decoder.cc reports it.
enum Phase { PH_QKV = 0, PH_ATTN, PH_O, PH_GATE_UP, PH_DOWN, PH_HEAD, PH_STEPS, PH_COUNT };
inline const char* const kPhaseNames[PH_COUNT] = {"norm_qkv_lora", "rope_attention", "o_residual",
                                                  "norm_gate_up_silu", "down_residual", "norm_lm_head", "steps"};

struct Lora {
  const float* a = nullptr;  // [maxRows, in, rank]
  const float* b = nullptr;  // [maxRows, rank, out]
  int rank = 0, in = 0, out = 0;
};

struct Layer {
  const float* inputNorm = nullptr;
  const float* mlpNorm = nullptr;
  Linear qkv, o, gateUp, down;
  const float *qkvBias = nullptr, *oBias = nullptr, *gateUpBias = nullptr, *downBias = nullptr;
  float* keys = nullptr;    // [maxRows, kvHeads, capacity, D] in the first floats (capacity per step)
  float* values = nullptr;
  Lora lora[T_COUNT];
};

struct Dims {
  int format = FP32;
  int hidden = 0, heads = 0, kvHeads = 0, D = 0, inter = 0, vocab = 0, layers = 0;
  float eps = 1e-6f, attnScale = 1.f;
  int window = 0;  // 0 = the whole context
  int maxRows = 0, capacity = 0, ropePositions = 0;
  int promptRows = 0;  // most token rows of a prompt pass computed together (pass() splits longer ones)
};

class Decoder {
 public:
  Decoder(const Dims& d, int threads) : d_(d), pool_(threads) {}

  Dims d_;
  const float* embed = nullptr;
  const float* finalNorm = nullptr;
  Linear lmHead;
  std::vector<Layer> layers;
  const float* ropeCos = nullptr;
  const float* ropeSin = nullptr;

  // Sizes the scratch buffers once the linears are known.
  void prepare();

  // rows: KV-cache rows; pos: each row's new token position (its past length); ids: tokens.
  // logits: [n, vocab] (rows with pos < 0 are skipped and left untouched).
  void step(int lo, int n, int capacity, const int32_t* ids, const int32_t* pos, float* logits);

  // A prompt pass: M token rows, row m = token ids[m] at position pos[m] of KV-cache row kv[m]
  // (a sequence's rows in position order, after its past); out[m] ≥ 0 = the line of logits [·, vocab]
  // row m writes, −1 = none (a prompt wants its last token's). Runs in chunks of promptRows rows;
  // within one, every row's key and value reach the cache before any row attends, so a prompt's
  // rows see each other as they would one at a time.
  void pass(int M, const int32_t* kv, const int32_t* pos, const int32_t* ids, const int32_t* out, int capacity,
            float* logits);

 private:
  struct Scratch {
    std::vector<float> x;                 // [rows, maxK] normed input of the thread's linear
    std::vector<int8_t> q;                // [rows, maxKpad]
    std::vector<float> sx, xs;            // [rows, maxKb]
    std::vector<float> sxp;               // [rows, maxKb / 2 · 16]
    std::vector<float> xa;                // [rows, rank] LoRA A products
    std::vector<float> scores;            // [capacity]
    std::vector<float> qt;                    // [D][16] a block's queries, transposed (attendBlock)
    std::vector<float> block;                 // [capacity + 16][16] a block's scores (attendBlock)
    std::vector<uint8_t> xu;              // [rows, K rounded up to 64] u8 input of an AMX Linear (amx.h)
    std::vector<QuantRow> rows;
  };
  void quantize(Scratch& s, const Linear& L, const float* x, int ldx, int M);
  // whether L over M rows of this chunk runs on its int8 prompt copy (amx.h: prompt chunks of 16+
  // rows, on AMX where the CPU grants it, else on AVX-512 VNNI)
  bool int8CopyTakes(const Linear& L, int M) const {
#if OPENLORA_VNNI
    return prompt_ && L.int8Copy != nullptr && M >= 16;
#else
    (void)L, (void)M;
    return false;
#endif
  }
  void lora(Scratch& s, const Layer& layer, int target, const float* x, int ldx, int M, int col0, int c0,
            int c1, float* y, int ldy);
  void linear(int t, const Linear& L, int M, const float* x, int ldx, const QuantRow* xq,
              std::initializer_list<std::pair<int, int>> ranges, float* y, int ldy);
  void attention(int t, int T, int l, int M, int capacity, bool together);
  bool byRows(const Linear& L, int M) const;
  void warm(const Linear& L, int t, int cols, int M) const;
  static constexpr int kWarmBytes = 8192, kWarmScales = 1024;
  void layer(int t, int l, int M, int capacity, bool together);
  // the layers and the LM head over the M rows set up in row_, pos_, out_ and h_
  void chunk(int M, int n, int capacity, bool together, float* logits);

  using Clock = std::chrono::steady_clock;
  void mark(Phase p) {
    if (!profiling_) return;
    const auto now = Clock::now();
    profile_[p] += std::chrono::duration<double, std::micro>(now - last_).count();
    last_ = now;
  }

 public:
  bool profiling_ = false;
  // fp32 [K, N] Linears at one row: split by rows (each thread one contiguous stream) instead of
  // by columns (Decoder::linear); decoder.cc oneRowByRows() decides per CPU
  bool oneRowByRows_ = false;
  // fp32 [K, N] Linears at 4-8 rows (a decode batch): kernels.h gemmAcross instead of gemmF32;
  // decoder.cc batchAcross() decides per CPU
  bool batchAcross_ = false;
  double profile_[PH_COUNT] = {};

 private:
  Clock::time_point last_;
  Pool pool_;
  std::vector<Scratch> scratch_;
  int maxK_ = 0, maxKpad_ = 0, maxKb_ = 0, maxRank_ = 0;
  int rows_ = 0;  // rows a step or a prompt chunk may have: the scratch buffers' height

 public:
  bool int8Copy_ = false;  // the Linears have int8 copies for prompt chunks (decoder.cc int8CopyLayout)

 private:
  bool prompt_ = false;  // the running chunk is a prompt's (AMX kernels may take its Linears)
  // shared between threads for one step
  std::vector<float> h_, qkv_, attn_, gu_, act_;
  int maxN_ = 0;
  std::vector<float> partial_;  // fp32 [K, N] Linears: each thread's sum over its rows [threads, rows, N]
  std::vector<int> row_, pos_, out_;  // the step's live rows: KV row, position, logits line (−1: none)
};

}  // namespace openlora
