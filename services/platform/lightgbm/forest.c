// forest.c evaluates a LightGBM model's trees from the compact layout forest.go builds. See
// mlops_forest in capi.h. The decisions are LightGBM's Tree::NumericalDecision and the row
// is read as LightGBM's single-row prediction reads it, so outputs are the same bits.
#include <math.h>
#include <stdlib.h>

#include "capi.h"

// LightGBM's kZeroThreshold is the float 1e-35f widened to double.
static const double kZero = (double)1e-35f;

#ifndef MLOPS_FOREST_LANES
#define MLOPS_FOREST_LANES 4
#endif

mlops_forest* mlops_forest_new(int32_t nnodes, int32_t ntrees, int32_t transform, double sigmoid) {
  mlops_forest* f = calloc(1, sizeof *f);
  if (f == NULL) return NULL;
  // One block for all the nodes, 64-byte aligned: a node never straddles two cache lines.
  if (posix_memalign((void**)&f->nodes, 64, (size_t)nnodes * sizeof(mlops_forest_node)) != 0) {
    free(f);
    return NULL;
  }
  f->start = calloc((size_t)ntrees, sizeof(int32_t));
  if (f->start == NULL) {
    free(f->nodes);
    free(f);
    return NULL;
  }
  f->ntrees = ntrees;
  f->transform = transform;
  f->sigmoid = sigmoid;
  return f;
}

void mlops_forest_free(mlops_forest* f) {
  if (f == NULL) return;
  free(f->nodes);
  free(f->start);
  free(f);
}

// go_left is LightGBM's Tree::NumericalDecision on a value of LightGBM's single-row path,
// which reads a value of magnitude at most kZeroThreshold as 0.
static inline int go_left(const mlops_forest_node* n, const double* row) {
  uint32_t meta = n->meta;
  double x = row[meta >> 4];
  if (__builtin_expect(fabs(x) > kZero, 1)) return x <= n->v;  // not NaN, not (almost) zero
  uint32_t missing = (meta >> MLOPS_FOREST_MISSING_SHIFT) & 3u;
  int dflt = (meta & MLOPS_FOREST_DEFAULT_LEFT) != 0;
  if (isnan(x)) {
    // NaN goes the default way on a NaN-missing split; elsewhere it is read as 0.
    if (missing == 2) return dflt;
  }
  // x is read as 0: the default way on a zero-missing split, else compared.
  if (missing == 1) return dflt;
  return 0.0 <= n->v;
}

// step moves n, a node of the tree starting at t, to the child the row goes to, without a
// branch on the direction (which the data decides, so a branch would mispredict often).
static inline const mlops_forest_node* step(const mlops_forest_node* t,
                                            const mlops_forest_node* n, const double* row) {
  uintptr_t l = (uintptr_t)(n + 1), r = (uintptr_t)(t + n->right);
  uintptr_t m = -(uintptr_t)go_left(n, row);
  return (const mlops_forest_node*)((l & m) | (r & ~m));
}

static inline int is_leaf(const mlops_forest_node* n) { return (n->meta & MLOPS_FOREST_LEAF) != 0; }

double mlops_forest_predict(const mlops_forest* f, const double* row) {
  double sum = 0.0;
  const mlops_forest_node* nodes = f->nodes;
  const int32_t* start = f->start;
  int32_t i = 0;
  // MLOPS_FOREST_LANES trees walked in step: their node loads overlap instead of waiting on
  // each other.
  for (; i + MLOPS_FOREST_LANES <= f->ntrees; i += MLOPS_FOREST_LANES) {
    const mlops_forest_node* t[MLOPS_FOREST_LANES];
    const mlops_forest_node* n[MLOPS_FOREST_LANES];
#pragma GCC unroll 16
    for (int k = 0; k < MLOPS_FOREST_LANES; k++) t[k] = n[k] = nodes + start[i + k];
    for (;;) {
      int live = 0;
#pragma GCC unroll 16
      for (int k = 0; k < MLOPS_FOREST_LANES; k++) {
        if (!is_leaf(n[k])) {
          n[k] = step(t[k], n[k], row);
          live = 1;
        }
      }
      if (!live) break;
    }
    // Summed one by one in tree order, as LightGBM does: the same rounding.
#pragma GCC unroll 16
    for (int k = 0; k < MLOPS_FOREST_LANES; k++) sum += n[k]->v;
  }
  for (; i < f->ntrees; i++) {
    const mlops_forest_node *t = nodes + start[i], *n = t;
    while (!is_leaf(n)) n = step(t, n, row);
    sum += n->v;
  }
  if (f->transform == MLOPS_FOREST_SIGMOID) {
    // BinaryLogloss::ConvertOutput: 1.0f / (1.0f + std::exp(-sigmoid_ * input)).
    return 1.0 / (1.0 + exp(-f->sigmoid * sum));
  }
  return sum;
}

mlops_forest_result mlops_forest_predict_cpu(const mlops_forest* f, const double* row) {
  mlops_forest_result r;
  int64_t t0 = mlops_thread_cpu_ns();
  r.v = mlops_forest_predict(f, row);
  r.cpu_ns = mlops_thread_cpu_ns() - t0;
  return r;
}

mlops_forest_result mlops_forest_bench_loop(const mlops_forest* f, const double* rows,
                                            int64_t nrows, int32_t ncol, int64_t n) {
  mlops_forest_result r = {0, 0};
  int64_t t0 = mlops_thread_cpu_ns();
  int64_t k = 0;
  for (int64_t i = 0; i < n; i++) {
    r.v += mlops_forest_predict(f, rows + k * ncol);
    if (++k == nrows) k = 0;
  }
  r.cpu_ns = mlops_thread_cpu_ns() - t0;
  return r;
}
