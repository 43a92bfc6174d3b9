// One checkpoint layout for every backend: a checkpoint written by one backend after a training
// step resumes on another with every tensor bitwise what the first held (parameters, running
// statistics, both Adam moments, the step count), the two give the same inference logits to
// `logits_bound` (relative norm), and a checkpoint the second writes after a step of its own loads
// on the first bitwise as the second holds it. Used with the oneDNN and reference backends on the
// CPU (test_training) and with oneDNN and CUDA (test_cuda_training).
#pragma once

#include <unistd.h>

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "textscale/train/checkpoint.h"
#include "training_step.h"

namespace textscale::testing {

// The number of elements whose bits differ (to_host widens floats exactly).
inline std::size_t bit_differences(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return std::max(a.size(), b.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < a.size(); ++i) differ += std::memcmp(&a[i], &b[i], sizeof(double)) != 0;
  return differ;
}

// What a checkpoint of a model of `config` records besides its tensors, for a made-up character
// encoding of the config's alphabet and length; `optimizer_kind` empty: no optimizer state.
inline train::CheckpointInfo checkpoint_info(const ModelConfig& config, const std::string& optimizer_kind) {
  train::CheckpointInfo info;
  info.model = config;
  info.encoding.alphabet = std::string(static_cast<std::size_t>(config.alphabet), 'a');
  info.encoding.char_length = config.length;
  info.encoding.char_order = "reversed";
  info.encoding.num_classes = config.classes;
  info.optimizer_kind = optimizer_kind;
  return info;
}

inline void expect_same_tensors(Trainee<float>& got, Trainee<float>& want, const std::string& label) {
  BOOST_TEST(bit_differences(to_host(got.model.params().values()), to_host(want.model.params().values())) == 0u,
             label << ": parameters differ");
  BOOST_TEST(bit_differences(to_host(got.model.params().state()), to_host(want.model.params().state())) == 0u,
             label << ": running statistics differ");
  for (int s = 0; s < want.optimizer.slot_count(); ++s)
    BOOST_TEST(bit_differences(to_host(got.optimizer.slot(s)), to_host(want.optimizer.slot(s))) == 0u,
               label << ": optimizer slot " << s << " differs");
  BOOST_TEST(got.optimizer.steps() == want.optimizer.steps(), label << ": optimizer step count");
}

// `name`: a published model; VDCNN's batch norms give running statistics to carry too.
inline void check_checkpoint_between(Backend<float>& first, Backend<float>& second, const std::string& name,
                                     const std::string& label, double logits_bound) {
  const ModelConfig config = config_of(name);
  const Batch batch = make_batch(config);
  train::OptimizerConfig adam;
  adam.kind = "adam";
  adam.lr = kLearningRate;
  const train::CheckpointInfo info = checkpoint_info(config, adam.kind);
  const auto folder = std::filesystem::temp_directory_path() /
                      ("textscale-checkpoint-between-" + std::to_string(getpid()) + "-" + name);
  std::filesystem::create_directories(folder);
  const std::string from_first = (folder / "first.h5").string(), from_second = (folder / "second.h5").string();

  // first -> second, after a step so that no tensor holds its initial value (the second's are
  // initialised alike, then overwritten by the checkpoint).
  Trainee<float> a(first, config, adam, batch);
  a.step();
  train::save_checkpoint(from_first, a.model, &a.optimizer, info);
  Trainee<float> b(second, config, adam, batch);
  train::load_checkpoint(from_first, b.model, &b.optimizer);
  expect_same_tensors(b, a, label + ": first's checkpoint loaded on the second");
  const std::vector<double> want = a.inference_logits(), got = b.inference_logits();
  const double logits = relative_error(got, want, 0, static_cast<Index>(want.size()));
  BOOST_TEST_MESSAGE(label << ": inference logits of the same checkpoint, relative difference " << logits);
  BOOST_TEST(logits <= logits_bound,
             label << ": inference logits of the same checkpoint: relative difference " << logits);

  // second -> first, after a step on the second (its own tensors now).
  b.step();
  BOOST_TEST(bit_differences(to_host(b.model.params().values()), to_host(a.model.params().values())) > 0u,
             label << ": the second's step changed no parameter");
  train::save_checkpoint(from_second, b.model, &b.optimizer, info);
  Trainee<float> back(first, config, adam, batch);
  train::load_checkpoint(from_second, back.model, &back.optimizer);
  expect_same_tensors(back, b, label + ": second's checkpoint loaded on the first");
  BOOST_TEST(back.optimizer.steps() == 2);

  std::filesystem::remove_all(folder);
}

}  // namespace textscale::testing
