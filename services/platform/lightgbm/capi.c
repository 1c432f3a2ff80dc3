// capi.c loads LightGBM's shared library with dlopen and forwards calls through function
// pointers. See capi.h.
#include "capi.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// mlops_log_to_stderr receives LightGBM's log messages.
static void mlops_log_to_stderr(const char* msg) {
  fputs(msg, stderr);
}

mlops_lgbm_api* mlops_lgbm_open(const char* path, char* err, size_t errlen) {
  void* dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (dl == NULL) {
    const char* m = dlerror();
    snprintf(err, errlen, "%s", m ? m : "dlopen failed");
    return NULL;
  }
  mlops_lgbm_api* a = calloc(1, sizeof(mlops_lgbm_api));
  if (a == NULL) {
    snprintf(err, errlen, "out of memory");
    dlclose(dl);
    return NULL;
  }
  a->dl = dl;
#define MLOPS_SYM(field, name)                                  \
  do {                                                          \
    *(void**)(&a->field) = dlsym(dl, name);                     \
    if (a->field == NULL) {                                     \
      snprintf(err, errlen, "symbol %s not found in %s", name, path); \
      free(a);                                                  \
      dlclose(dl);                                              \
      return NULL;                                              \
    }                                                           \
  } while (0)
  MLOPS_SYM(get_last_error, "LGBM_GetLastError");
  MLOPS_SYM(dataset_create_from_mat, "LGBM_DatasetCreateFromMat");
  MLOPS_SYM(dataset_set_field, "LGBM_DatasetSetField");
  MLOPS_SYM(dataset_set_feature_names, "LGBM_DatasetSetFeatureNames");
  MLOPS_SYM(dataset_get_num_data, "LGBM_DatasetGetNumData");
  MLOPS_SYM(dataset_get_num_feature, "LGBM_DatasetGetNumFeature");
  MLOPS_SYM(dataset_free, "LGBM_DatasetFree");
  MLOPS_SYM(booster_create, "LGBM_BoosterCreate");
  MLOPS_SYM(booster_create_from_modelfile, "LGBM_BoosterCreateFromModelfile");
  MLOPS_SYM(booster_load_model_from_string, "LGBM_BoosterLoadModelFromString");
  MLOPS_SYM(booster_free, "LGBM_BoosterFree");
  MLOPS_SYM(booster_add_valid_data, "LGBM_BoosterAddValidData");
  MLOPS_SYM(booster_update_one_iter, "LGBM_BoosterUpdateOneIter");
  MLOPS_SYM(booster_rollback_one_iter, "LGBM_BoosterRollbackOneIter");
  MLOPS_SYM(booster_get_current_iteration, "LGBM_BoosterGetCurrentIteration");
  MLOPS_SYM(booster_get_eval_counts, "LGBM_BoosterGetEvalCounts");
  MLOPS_SYM(booster_get_eval_names, "LGBM_BoosterGetEvalNames");
  MLOPS_SYM(booster_get_eval, "LGBM_BoosterGetEval");
  MLOPS_SYM(booster_get_feature_names, "LGBM_BoosterGetFeatureNames");
  MLOPS_SYM(booster_get_num_feature, "LGBM_BoosterGetNumFeature");
  MLOPS_SYM(booster_get_num_classes, "LGBM_BoosterGetNumClasses");
  MLOPS_SYM(booster_num_model_per_iteration, "LGBM_BoosterNumModelPerIteration");
  MLOPS_SYM(booster_calc_num_predict, "LGBM_BoosterCalcNumPredict");
  MLOPS_SYM(booster_save_model, "LGBM_BoosterSaveModel");
  MLOPS_SYM(booster_save_model_to_string, "LGBM_BoosterSaveModelToString");
  MLOPS_SYM(booster_predict_for_mat, "LGBM_BoosterPredictForMat");
  MLOPS_SYM(fast_init, "LGBM_BoosterPredictForMatSingleRowFastInit");
  MLOPS_SYM(fast_predict, "LGBM_BoosterPredictForMatSingleRowFast");
  MLOPS_SYM(fast_free, "LGBM_FastConfigFree");
#undef MLOPS_SYM
  // LightGBM prints its log lines ("[LightGBM] [Warning] ...") to stdout, where they would
  // interleave with the services' JSON logs. Send them to stderr instead (optional symbol).
  int (*register_log)(void (*)(const char*)) = NULL;
  *(void**)(&register_log) = dlsym(dl, "LGBM_RegisterLogCallback");
  if (register_log != NULL) register_log(mlops_log_to_stderr);
  return a;
}

// check turns a LightGBM return code into NULL or a heap copy of the thread-local error.
static char* check(const mlops_lgbm_api* a, int rc) {
  if (rc == 0) return NULL;
  const char* m = a->get_last_error();
  char* s = strdup(m != NULL && m[0] != '\0' ? m : "unknown LightGBM error");
  return s != NULL ? s : strdup("out of memory");
}

char* mlops_dataset_create_from_mat(const mlops_lgbm_api* a, const double* data, int32_t nrow,
                                    int32_t ncol, const char* params, void* reference, void** out) {
  return check(a, a->dataset_create_from_mat(data, MLOPS_DTYPE_FLOAT64, nrow, ncol, 1, params,
                                             reference, out));
}

char* mlops_dataset_set_field_f32(const mlops_lgbm_api* a, void* h, const char* field,
                                  const float* data, int n) {
  return check(a, a->dataset_set_field(h, field, data, n, MLOPS_DTYPE_FLOAT32));
}

char* mlops_dataset_set_feature_names(const mlops_lgbm_api* a, void* h, const char** names, int n) {
  return check(a, a->dataset_set_feature_names(h, names, n));
}

char* mlops_dataset_get_num_data(const mlops_lgbm_api* a, void* h, int* out) {
  return check(a, a->dataset_get_num_data(h, out));
}

char* mlops_dataset_get_num_feature(const mlops_lgbm_api* a, void* h, int* out) {
  return check(a, a->dataset_get_num_feature(h, out));
}

char* mlops_dataset_free(const mlops_lgbm_api* a, void* h) { return check(a, a->dataset_free(h)); }

char* mlops_booster_create(const mlops_lgbm_api* a, void* train, const char* params, void** out) {
  return check(a, a->booster_create(train, params, out));
}

char* mlops_booster_create_from_modelfile(const mlops_lgbm_api* a, const char* filename, int* iters,
                                          void** out) {
  return check(a, a->booster_create_from_modelfile(filename, iters, out));
}

char* mlops_booster_load_model_from_string(const mlops_lgbm_api* a, const char* model, int* iters,
                                           void** out) {
  return check(a, a->booster_load_model_from_string(model, iters, out));
}

char* mlops_booster_free(const mlops_lgbm_api* a, void* h) { return check(a, a->booster_free(h)); }

char* mlops_booster_add_valid_data(const mlops_lgbm_api* a, void* h, void* valid) {
  return check(a, a->booster_add_valid_data(h, valid));
}

char* mlops_booster_update_one_iter(const mlops_lgbm_api* a, void* h, int* finished) {
  return check(a, a->booster_update_one_iter(h, finished));
}

char* mlops_booster_rollback_one_iter(const mlops_lgbm_api* a, void* h) {
  return check(a, a->booster_rollback_one_iter(h));
}

char* mlops_booster_get_current_iteration(const mlops_lgbm_api* a, void* h, int* out) {
  return check(a, a->booster_get_current_iteration(h, out));
}

char* mlops_booster_get_eval_counts(const mlops_lgbm_api* a, void* h, int* out) {
  return check(a, a->booster_get_eval_counts(h, out));
}

char* mlops_booster_get_eval_names(const mlops_lgbm_api* a, void* h, int len, int* out_len,
                                   size_t buffer_len, size_t* out_buffer_len, char** out) {
  return check(a, a->booster_get_eval_names(h, len, out_len, buffer_len, out_buffer_len, out));
}

char* mlops_booster_get_eval(const mlops_lgbm_api* a, void* h, int data_idx, int* out_len,
                             double* out) {
  return check(a, a->booster_get_eval(h, data_idx, out_len, out));
}

char* mlops_booster_get_feature_names(const mlops_lgbm_api* a, void* h, int len, int* out_len,
                                      size_t buffer_len, size_t* out_buffer_len, char** out) {
  return check(a, a->booster_get_feature_names(h, len, out_len, buffer_len, out_buffer_len, out));
}

char* mlops_booster_get_num_feature(const mlops_lgbm_api* a, void* h, int* out) {
  return check(a, a->booster_get_num_feature(h, out));
}

char* mlops_booster_get_num_classes(const mlops_lgbm_api* a, void* h, int* out) {
  return check(a, a->booster_get_num_classes(h, out));
}

char* mlops_booster_num_model_per_iteration(const mlops_lgbm_api* a, void* h, int* out) {
  return check(a, a->booster_num_model_per_iteration(h, out));
}

char* mlops_booster_calc_num_predict(const mlops_lgbm_api* a, void* h, int nrow, int kind,
                                     int start, int num, int64_t* out) {
  return check(a, a->booster_calc_num_predict(h, nrow, kind, start, num, out));
}

char* mlops_booster_save_model(const mlops_lgbm_api* a, void* h, int start, int num,
                               const char* filename) {
  return check(a, a->booster_save_model(h, start, num, 0, filename));
}

char* mlops_booster_save_model_to_string(const mlops_lgbm_api* a, void* h, int start, int num,
                                         char** out, int64_t* out_len) {
  int64_t cap = 1 << 20;
  *out = NULL;
  *out_len = 0;
  for (int attempt = 0; attempt < 2; attempt++) {
    char* buf = malloc((size_t)cap);
    if (buf == NULL) return strdup("out of memory");
    int64_t need = 0;
    char* err = check(a, a->booster_save_model_to_string(h, start, num, 0, cap, &need, buf));
    if (err != NULL) {
      free(buf);
      return err;
    }
    if (need <= cap) {
      *out = buf;
      *out_len = need > 0 ? need - 1 : 0;  // need counts the terminating NUL
      return NULL;
    }
    free(buf);
    cap = need;
  }
  return strdup("model text changed size between two LGBM_BoosterSaveModelToString calls");
}

char* mlops_booster_predict_for_mat(const mlops_lgbm_api* a, void* h, const double* data,
                                    int32_t nrow, int32_t ncol, int kind, int start, int num,
                                    const char* params, int64_t* out_len, double* out) {
  return check(a, a->booster_predict_for_mat(h, data, MLOPS_DTYPE_FLOAT64, nrow, ncol, 1, kind,
                                             start, num, params, out_len, out));
}

char* mlops_fast_new(const mlops_lgbm_api* a, void* booster, int kind, int start, int num,
                     int32_t ncol, int64_t out_cap, const char* params, mlops_fast** out) {
  *out = NULL;
  mlops_fast* f = calloc(1, sizeof(mlops_fast));
  if (f == NULL) return strdup("out of memory");
  f->api = a;
  f->ncol = ncol;
  f->out_cap = out_cap;
  f->in = calloc((size_t)(ncol > 0 ? ncol : 1), sizeof(double));
  f->out = calloc((size_t)(out_cap > 0 ? out_cap : 1), sizeof(double));
  if (f->in == NULL || f->out == NULL) {
    mlops_fast_free(f);
    return strdup("out of memory");
  }
  char* err = check(a, a->fast_init(booster, kind, start, num, MLOPS_DTYPE_FLOAT64, ncol, params,
                                    &f->cfg));
  if (err != NULL) {
    f->cfg = NULL;
    mlops_fast_free(f);
    return err;
  }
  *out = f;
  return NULL;
}

int mlops_fast_predict(mlops_fast* f, const double* row) {
  int rc = f->api->fast_predict(f->cfg, row != NULL ? row : f->in, &f->out_len, f->out);
  if (rc != 0) {
    const char* m = f->api->get_last_error();
    snprintf(f->err, sizeof f->err, "%s", m != NULL ? m : "unknown LightGBM error");
  }
  return rc;
}

int mlops_fast_predict_cpu(mlops_fast* f, const double* row) {
  int64_t start = mlops_thread_cpu_ns();
  int rc = mlops_fast_predict(f, row);
  f->cpu_ns = mlops_thread_cpu_ns() - start;
  return rc;
}

int64_t mlops_thread_cpu_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int mlops_fast_bench_loop(mlops_fast* f, const double* rows, int64_t nrows, int64_t n,
                          int64_t* cpu_ns) {
  int (*fn)(void*, const void*, int64_t*, double*) = f->api->fast_predict;
  int64_t r = 0;
  int64_t start = mlops_thread_cpu_ns();
  for (int64_t i = 0; i < n; i++) {
    int rc = fn(f->cfg, rows + r * f->ncol, &f->out_len, f->out);
    if (rc != 0) return rc;
    if (++r == nrows) r = 0;
  }
  *cpu_ns = mlops_thread_cpu_ns() - start;
  return 0;
}

void mlops_fast_free(mlops_fast* f) {
  if (f == NULL) return;
  if (f->cfg != NULL) f->api->fast_free(f->cfg);
  free(f->in);
  free(f->out);
  free(f);
}

const char* mlops_lgbm_last_error(const mlops_lgbm_api* a) { return a->get_last_error(); }
