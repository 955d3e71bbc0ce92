// bench_caption built by nvcc, so that --device cuda runs the model on the GPU (the same source).
#include "../bench_caption.cpp"
