// The rate-distortion sweep behind `pgolf bench`: a checkpoint compressed under many codec
// settings (sweep points) and byte codecs, with bytes, order-0 entropy, error, time and (given an
// evaluator) val_bpb for each, per tensor and in total. Each point is encoded once and its
// streams packed by every byte codec (pack_artifact), so N compressors cost N packs, not N encodes.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "artifact/artifact.h"

namespace pgolf {

class Checkpoint;
class Calibration;
class GptqEngine;

struct SweepPoint {
  std::string label;               // "int6:clip=mse", "tok_emb lowrank:rank=64+int8"
  std::string family;              // the plots' polyline it belongs to: "int-N absmax", "kmeans ecsq", ...
  std::string codec;               // the plan's default spec (large 2-D float tensors)
  std::vector<std::string> rules;  // REGEX=SPEC, ahead of the default plan's rules
};

struct SweepTensor {
  TensorReport report;
  double symbol_entropy_bytes = 0;  // order-0 entropy of its symbol streams, each on its own
};

struct SweepResult {
  SweepPoint point;
  std::string compressor;
  uint64_t artifact_bytes = 0;
  int64_t parameters = 0;            // every tensor's elements
  double symbol_entropy_bytes = 0;   // order-0 entropy of the symbol groups, each group as one stream
  double tensor_entropy_bytes = 0;   // the same, each tensor's symbol streams on their own (what a coder
                                     // adapting per tensor reaches; lower where tensors differ, as k-means indices do)
  Distortion quantized;              // over the tensors a lossy codec encoded
  int64_t quantized_tensors = 0;
  double encode_seconds = 0;         // tensor codecs (once per point) plus this byte codec
  double decode_seconds = 0;         // the whole artifact back to floats
  std::optional<double> val_bpb;
  std::vector<SweepTensor> tensors;  // the checkpoint's order

  double bits_per_parameter() const;
};

struct SweepOptions {
  std::vector<std::string> compressors = {"zstd:22"};
  unsigned threads = 0;          // 0: all cores
  ProgressReport progress;       // stage "bench": per point one encode, one pack per compressor, one evaluation
  const Calibration* calibration = nullptr;  // for gptq points and the output-space error
  const GptqEngine* gptq = nullptr;          // null: the CPU
  // val_bpb of a decoded artifact; called once per point (byte codecs are lossless).
  std::function<double(DecodedArtifact&&)> evaluate;
};

// Results point by point, compressor by compressor. InputError for a bad spec or rule.
std::vector<SweepResult> run_sweep(const Checkpoint& checkpoint, std::span<const SweepPoint> points,
                                   const SweepOptions& options);

// Groups whose bytes are symbols (int-N values, k-means indices, ECSQ's 1- or 2-byte integers).
bool is_symbol_group(const std::string& group);

// int4 .. int8 under each clip rule (absmax, quantile:0.9999, std:K, mse), in that order.
std::vector<std::string> int_n_sweep_specs();
// ECSQ with one step shared by every quantized tensor, from coarse to fine: totalrelmse targets
// whose artifacts span 8 to 13 MB on base9.
std::vector<std::string> ecsq_sweep_specs();
// What needs calibration: GPTQ over each ECSQ target with rate-aware rounding (rdo=1) and over
// int5..int8 with the SDClip rule.
std::vector<std::string> gptq_sweep_specs();
// The default sweep: int_n_sweep_specs(); kmeans K = 16, 64, 256, Lloyd and ECSQ (and ECSQ K = 256
// at the lambda that beats int6 on base9); prune 1/3/5%
// before int6; tok_emb low-rank (rank 16 .. 256, int8 factors) with int6 elsewhere; the ECSQ
// ladder; with calibration, gptq_sweep_specs(). Points whose codecs the registry does not know are
// left out, each with a line in `skipped`.
std::vector<SweepPoint> default_sweep(std::vector<std::string>& skipped, bool calibrated = false);
// A user's spec as a point: its family is the spec with every number written N.
SweepPoint sweep_point(const std::string& spec);

// The kind of tensor a name stands for, across blocks: "blocks.3.attn.c_q.weight" -> "attn.c_q",
// "tok_emb.weight" -> "tok_emb".
std::string tensor_class(const std::string& name);

}  // namespace pgolf
