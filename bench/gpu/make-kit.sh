#!/usr/bin/env bash
# Builds textscale for a GPU machine that has CUDA, cuDNN and NCCL (e.g. through PyTorch's wheels)
# but no MPI, HDF5, Boost or oneDNN, and packs what it needs into one archive:
#   gpu-kit/textscale-gpu-kit.tar.xz: bin/textscale, tests/ (test_cuda_*, test_nccl), lib/ (every shared
#   library they load except the CUDA libraries and glibc), bench/ (the scripts run-kit.sh uses),
#   data/ (AG News rows for a training check), words/ (AG News words as jobs/main.sh prepares them,
#   for the BiLSTM's training check), acc/ (the accuracy comparison's prepared data).
# The CUDA libraries are taken from the GPU machine at run time (run-kit.sh sets LD_LIBRARY_PATH).
#
# usage: bench/gpu/make-kit.sh [BUILD_DIR (default build-gpu)] [KIT_DIR (default gpu-kit)]
# Environment: CUDA_ARCHITECTURES (default 90: H100/H200).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-gpu}
kit=${2:-$root/gpu-kit}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTEXTSCALE_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHITECTURES:-90}" >/dev/null
cmake --build "$build" -j "$(nproc)" --target textscale test_cuda_backend test_cuda_rnn test_cuda_training \
  test_nccl

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/tests" "$stage/lib" "$stage/bench/gpu"
cp "$build/bin/textscale" "$stage/bin/"
cp "$build/tests/test_cuda_backend" "$build/tests/test_cuda_rnn" "$build/tests/test_cuda_training" \
  "$build/tests/test_nccl" "$stage/tests/"
strip "$stage"/bin/* "$stage"/tests/*
# Shared libraries: everything ldd resolves, less the system's own and the CUDA libraries.
for binary in "$stage"/bin/* "$stage"/tests/*; do
  ldd "$binary" | awk '/=> \//{print $3}'
done | sort -u | while read -r library; do
  case "$(basename "$library")" in
    # glibc and the compiler's runtime: the GPU machine's own (newer, backward compatible).
    libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libresolv.so.* | ld-linux*) ;;
    libstdc++.so.* | libgcc_s.so.*) ;;
    libcuda.so.* | libcudart.so.* | libcublas*.so.* | libcudnn*.so.* | libnccl.so.*) ;;
    *) cp -L "$library" "$stage/lib/" ;;
  esac
done
# A real-data check: AG News's training sample and the first 3,800 test rows, when present.
data=${TEXTSCALE_DATA:-$root/../shared/data}
if [[ -f $data/ag_news/alps_train_sample/dev.tsv ]]; then
  mkdir -p "$stage/data"
  "$build/bin/textscale" preprocess --input "$data/ag_news/alps_train_sample/dev.tsv" --format tsv --label-column 1 \
    --labels names --classes "$data/ag_news/classes.txt" --unescape backslash --no-words \
    --output "$stage/data/train.h5" >/dev/null
  head -n 3800 "$data/ag_news/test.csv" >"$stage/test.csv"
  "$build/bin/textscale" preprocess --input "$stage/test.csv" --format zhang --unescape backslash --no-words \
    --classes "$data/ag_news/classes.txt" --output "$stage/data/test.h5" >/dev/null
  rm "$stage/test.csv"
else
  echo "no AG News under $data: the kit will not include the real-data training check"
fi
# The BiLSTM's training check: jobs/main.sh's preprocessing of the same files (the 10k-row sample
# shuffled with seed 1 and a 5% validation split, the 7,600 test rows over its vocabulary), words
# only (--no-chars leaves the word tensors as they are; 1.2 MB of the archive). Without them the
# kit is made all the same and run-kit.sh skips that check.
prepare_words() {
  mkdir -p "$stage/words" &&
    "$build/bin/textscale" preprocess --input "$data/ag_news/alps_train_sample/dev.tsv" --format tsv \
      --label-column 1 --labels names --classes "$data/ag_news/classes.txt" --unescape backslash \
      --shuffle --seed 1 --validation-fraction 0.05 --no-chars --quiet --output "$stage/words/train.h5" &&
    "$build/bin/textscale" preprocess --input "$data/ag_news/test.csv" --format zhang --unescape backslash \
      --vocab-from "$stage/words/train.h5" --no-chars --quiet --output "$stage/words/test.h5" &&
    gzip -c "$data/ag_news/test.csv" > "$stage/words/test.csv.gz"  # raw text for textscale predict on the GPU
}
if [[ -f $data/ag_news/alps_train_sample/dev.tsv && -f $data/ag_news/test.csv ]]; then
  prepare_words || { echo "preparing AG News words failed (above): the kit will not include the bilstm training check"
    rm -rf "$stage/words"; }
else
  echo "no AG News under $data: the kit will not include the bilstm training check"
fi
# The accuracy comparison's data (run-kit.sh accuracy): bench/accuracy.sh's own files for AG News
# and IMDB with a 5% validation split (acc/), AG News also without one (acc-full/, for VALID=0),
# and .npz copies for a PyTorch without h5py (writing them needs numpy and h5py here, e.g.
# Debian's python3-h5py; PyTorch is not needed).
for dataset in ag_news imdb; do
  TEXTSCALE=$build/bin/textscale TEXTSCALE_DATA=$data bash "$root/bench/accuracy.sh" --dataset "$dataset" \
    --valid 0.05 --work "$stage/acc" --prepare-only >/dev/null ||
    echo "preparing $dataset from $data failed (above): the kit's accuracy mode will skip it"
done
TEXTSCALE=$build/bin/textscale TEXTSCALE_DATA=$data bash "$root/bench/accuracy.sh" --dataset ag_news \
  --work "$stage/acc-full" --prepare-only >/dev/null || echo "preparing ag_news from $data for acc-full/ failed (above)"
cp "$root"/bench/peer_models.py "$root"/bench/peer_word_models.py "$root"/bench/peer_train.py "$root"/bench/accuracy.sh \
  "$root"/bench/accuracy_table.py "$stage/bench/"
cp "$root"/bench/gpu/peer_gpu.py "$root"/bench/gpu/summarize.py "$root"/bench/gpu/roofline.py "$stage/bench/gpu/"
# The PyTorch BiLSTM, when this checkout has it (peer_gpu.py's hook reads it; without it the
# kit's bilstm rows report the peer not available).
if [[ -f $root/bench/peer_word_models.py ]]; then
  cp "$root/bench/peer_word_models.py" "$stage/bench/"
else
  echo "no bench/peer_word_models.py: the kit's bilstm benchmarks will report the PyTorch peer not available"
fi
(cd "$root" && git rev-parse HEAD 2>/dev/null || echo unknown) >"$stage/REVISION"
mkdir -p "$kit"
tar -C "$stage" -cJf "$kit/textscale-gpu-kit.tar.xz" .
echo "wrote $kit/textscale-gpu-kit.tar.xz ($(du -h "$kit/textscale-gpu-kit.tar.xz" | cut -f1)); libraries packed:"
ls "$stage/lib" | tr '\n' ' '
echo
