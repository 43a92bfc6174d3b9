// Times oneDNN's 1-D convolution (forward, backward data, backward weights) on Crepe's and VDCNN's
// shapes in several activation layouts, to choose the CPU backend's layout. Prints GFLOP/s.
//
//   build/bench/conv_layouts [iterations]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <vector>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

struct Shape {
  const char* name;
  memory::dim n, c, o, t, k, pad;
};

double time_ms(const std::function<void()>& run, int iterations) {
  run();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) run();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / iterations;
}

void bench(const Shape& s, bool two_d, tag activation, const char* label, int iterations) {
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  const memory::dim t_out = s.t + 2 * s.pad - s.k + 1;
  memory::dims src_dims = two_d ? memory::dims{s.n, s.c, 1, s.t} : memory::dims{s.n, s.c, s.t};
  memory::dims dst_dims = two_d ? memory::dims{s.n, s.o, 1, t_out} : memory::dims{s.n, s.o, t_out};
  memory::dims w_dims = two_d ? memory::dims{s.o, s.c, 1, s.k} : memory::dims{s.o, s.c, s.k};
  memory::dims strides = two_d ? memory::dims{1, 1} : memory::dims{1};
  memory::dims pad = two_d ? memory::dims{0, s.pad} : memory::dims{s.pad};
  memory::desc src(src_dims, dt::f32, activation), dst(dst_dims, dt::f32, activation), w(w_dims, dt::f32, tag::any),
      b({s.o}, dt::f32, tag::x);
  convolution_forward::desc fd(prop_kind::forward_training, algorithm::convolution_direct, src, w, b, dst, strides, pad,
                               pad);
  convolution_forward::primitive_desc fpd(fd, eng);
  convolution_backward_data::desc dd(algorithm::convolution_direct, fpd.src_desc(), w, fpd.dst_desc(), strides, pad,
                                     pad);
  convolution_backward_data::primitive_desc dpd(dd, eng, fpd);
  convolution_backward_weights::desc wd(algorithm::convolution_direct, fpd.src_desc(), w, b, fpd.dst_desc(), strides,
                                        pad, pad);
  convolution_backward_weights::primitive_desc wpd(wd, eng, fpd);
  memory msrc(fpd.src_desc(), eng), mdst(fpd.dst_desc(), eng), mw(fpd.weights_desc(), eng), mb(b, eng),
      mdw(wpd.diff_weights_desc(), eng), mdb(b, eng), mdsrc(dpd.diff_src_desc(), eng), mw2(dpd.weights_desc(), eng);
  convolution_forward f(fpd);
  convolution_backward_data bd(dpd);
  convolution_backward_weights bw(wpd);
  const double gflop = 2.0 * s.n * t_out * s.o * s.c * s.k / 1e9;
  double tf = time_ms(
      [&] {
        f.execute(strm, {{DNNL_ARG_SRC, msrc}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_BIAS, mb}, {DNNL_ARG_DST, mdst}});
        strm.wait();
      },
      iterations);
  double td = time_ms(
      [&] {
        bd.execute(strm, {{DNNL_ARG_DIFF_DST, mdst}, {DNNL_ARG_WEIGHTS, mw2}, {DNNL_ARG_DIFF_SRC, mdsrc}});
        strm.wait();
      },
      iterations);
  double tw = time_ms(
      [&] {
        bw.execute(
            strm,
            {{DNNL_ARG_SRC, msrc}, {DNNL_ARG_DIFF_DST, mdst}, {DNNL_ARG_DIFF_WEIGHTS, mdw}, {DNNL_ARG_DIFF_BIAS, mdb}});
        strm.wait();
      },
      iterations);
  std::printf("%-22s %-14s fwd %6.1f ms %5.0f GF/s | bwd-data %6.1f ms %5.0f GF/s | bwd-w %6.1f ms %5.0f GF/s | %s\n",
              s.name, label, tf, gflop / tf * 1e3, td, gflop / td * 1e3, tw, gflop / tw * 1e3, fpd.impl_info_str());
}

}  // namespace

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 5;
  const std::vector<Shape> shapes{{"crepe conv2 k7", 128, 256, 256, 336, 7, 0},
                                  {"crepe conv3 k3", 128, 256, 256, 110, 3, 0},
                                  {"vdcnn stage1 k3", 128, 64, 64, 1014, 3, 1},
                                  {"vdcnn stage4 k3", 128, 512, 512, 127, 3, 1}};
  for (const auto& s : shapes) {
    bench(s, false, tag::nwc, "1d nwc", iterations);
    bench(s, false, tag::any, "1d any", iterations);
    bench(s, true, tag::nhwc, "2d nhwc", iterations);
    bench(s, true, tag::any, "2d any", iterations);
  }
}
