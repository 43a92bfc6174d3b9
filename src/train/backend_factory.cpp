#include "textscale/train/backend_factory.h"

#include <algorithm>

#include "textscale/common/error.h"
#include "textscale/common/log.h"
#include "textscale/engine/cpu/dnnl_backend.h"
#include "textscale/engine/reference_backend.h"
#ifdef TEXTSCALE_WITH_CUDA
#include "textscale/cuda/cuda_backend.h"
#endif

namespace textscale::train {

bool uses_gpu(engine::Device device, int local_size) {
  if (device == engine::Device::cpu) return false;
#ifdef TEXTSCALE_WITH_CUDA
  const int gpus = cuda::device_count();
  if (device == engine::Device::automatic) {
    if (gpus > 0 && gpus < local_size)
      TS_LOG(warn, local_size << " ranks on this node share " << gpus
                              << " GPU(s): training on the CPU (one rank per GPU, or --device cpu)");
    return gpus >= std::max(1, local_size);
  }
  if (gpus == 0) throw InputError("--device cuda: no GPU is visible");
  if (gpus < local_size)
    throw InputError("--device cuda: " + std::to_string(local_size) + " ranks on this node but " +
                     std::to_string(gpus) + " visible GPU(s); start one rank per GPU");
  return true;
#else
  (void)local_size;
  if (device == engine::Device::cuda)
    throw InputError("--device cuda: this textscale was built without CUDA (TEXTSCALE_CUDA=OFF)");
  return false;
#endif
}

engine::BackendOptions resolve(engine::BackendOptions options, int local_size) {
  engine::validate(options);
  if (options.device == engine::Device::automatic)
    options.device = uses_gpu(options.device, local_size) ? engine::Device::cuda : engine::Device::cpu;
  else
    static_cast<void>(uses_gpu(options.device, local_size));  // refuses cuda where it cannot run
  return options;
}

std::unique_ptr<engine::Backend<float>> make_backend(const engine::BackendOptions& requested, int local_rank,
                                                     int local_size) {
  const engine::BackendOptions options = resolve(requested, local_size);
  engine::DnnlBackend::set_threads(options.threads);
  if (options.device == engine::Device::cuda) {
#ifdef TEXTSCALE_WITH_CUDA
    return cuda::make_cuda_backend(
        {local_rank % cuda::device_count(), options.precision, options.cudnn_search, options.bf16_convolutions});
#endif
  }
  (void)local_rank;  // a GPU setting
  const bool bf16 = options.precision == engine::Precision::bf16;
  if (options.cpu_backend == engine::CpuBackend::onednn) return std::make_unique<engine::DnnlBackend>(options);
  if (bf16) throw OptionError("--precision bf16: the reference backend computes in fp32 and fp64 only");
  return std::make_unique<engine::ReferenceBackend<float>>();
}

}  // namespace textscale::train
