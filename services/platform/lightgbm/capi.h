// capi.h declares the slice of LightGBM's C API (include/LightGBM/c_api.h, v4) that the Go
// binding uses, as a table of function pointers filled by dlopen/dlsym at run time, plus the
// small C trampolines the Go code calls. The wheel ships no headers, so the prototypes here
// are written from the documented signatures; every LightGBM function returns 0 on success
// and -1 on failure, with the message in LGBM_GetLastError (a thread-local buffer).
#ifndef MLOPS_LGBM_CAPI_H
#define MLOPS_LGBM_CAPI_H

#include <stddef.h>
#include <stdint.h>

// Constants from c_api.h.
#define MLOPS_DTYPE_FLOAT32 0
#define MLOPS_DTYPE_FLOAT64 1
#define MLOPS_PREDICT_NORMAL 0
#define MLOPS_PREDICT_RAW_SCORE 1
#define MLOPS_PREDICT_CONTRIB 3

typedef struct mlops_lgbm_api {
  void* dl;
  const char* (*get_last_error)(void);

  int (*dataset_create_from_mat)(const void* data, int data_type, int32_t nrow, int32_t ncol,
                                 int is_row_major, const char* parameters, const void* reference,
                                 void** out);
  int (*dataset_set_field)(void* handle, const char* field_name, const void* field_data,
                           int num_element, int type);
  int (*dataset_set_feature_names)(void* handle, const char** feature_names, int num_feature_names);
  int (*dataset_get_num_data)(void* handle, int* out);
  int (*dataset_get_num_feature)(void* handle, int* out);
  int (*dataset_free)(void* handle);

  int (*booster_create)(const void* train_data, const char* parameters, void** out);
  int (*booster_create_from_modelfile)(const char* filename, int* out_num_iterations, void** out);
  int (*booster_load_model_from_string)(const char* model_str, int* out_num_iterations, void** out);
  int (*booster_free)(void* handle);
  int (*booster_add_valid_data)(void* handle, const void* valid_data);
  int (*booster_update_one_iter)(void* handle, int* produced_empty_tree);
  int (*booster_rollback_one_iter)(void* handle);
  int (*booster_get_current_iteration)(void* handle, int* out_iteration);
  int (*booster_get_eval_counts)(void* handle, int* out_len);
  int (*booster_get_eval_names)(void* handle, int len, int* out_len, size_t buffer_len,
                                size_t* out_buffer_len, char** out_strs);
  int (*booster_get_eval)(void* handle, int data_idx, int* out_len, double* out_results);
  int (*booster_get_feature_names)(void* handle, int len, int* out_len, size_t buffer_len,
                                   size_t* out_buffer_len, char** out_strs);
  int (*booster_get_num_feature)(void* handle, int* out_len);
  int (*booster_get_num_classes)(void* handle, int* out_len);
  int (*booster_num_model_per_iteration)(void* handle, int* out);
  int (*booster_calc_num_predict)(void* handle, int num_row, int predict_type, int start_iteration,
                                  int num_iteration, int64_t* out_len);
  int (*booster_save_model)(void* handle, int start_iteration, int num_iteration,
                            int feature_importance_type, const char* filename);
  int (*booster_save_model_to_string)(void* handle, int start_iteration, int num_iteration,
                                      int feature_importance_type, int64_t buffer_len,
                                      int64_t* out_len, char* out_str);
  int (*booster_predict_for_mat)(void* handle, const void* data, int data_type, int32_t nrow,
                                 int32_t ncol, int is_row_major, int predict_type,
                                 int start_iteration, int num_iteration, const char* parameter,
                                 int64_t* out_len, double* out_result);
  int (*fast_init)(void* handle, int predict_type, int start_iteration, int num_iteration,
                   int data_type, int32_t ncol, const char* parameter, void** out_fast_config);
  int (*fast_predict)(void* fast_config, const void* data, int64_t* out_len, double* out_result);
  int (*fast_free)(void* fast_config);
} mlops_lgbm_api;

// mlops_lgbm_open dlopens path and resolves every symbol. On failure it returns NULL and
// writes a message into err (at most errlen bytes, NUL-terminated).
mlops_lgbm_api* mlops_lgbm_open(const char* path, char* err, size_t errlen);

// Trampolines. Each returns NULL on success or, on failure, a malloc'd copy of
// LGBM_GetLastError taken on the same OS thread as the failing call (the caller frees it).
char* mlops_dataset_create_from_mat(const mlops_lgbm_api* a, const double* data, int32_t nrow,
                                    int32_t ncol, const char* params, void* reference, void** out);
char* mlops_dataset_set_field_f32(const mlops_lgbm_api* a, void* h, const char* field,
                                  const float* data, int n);
char* mlops_dataset_set_feature_names(const mlops_lgbm_api* a, void* h, const char** names, int n);
char* mlops_dataset_get_num_data(const mlops_lgbm_api* a, void* h, int* out);
char* mlops_dataset_get_num_feature(const mlops_lgbm_api* a, void* h, int* out);
char* mlops_dataset_free(const mlops_lgbm_api* a, void* h);

char* mlops_booster_create(const mlops_lgbm_api* a, void* train, const char* params, void** out);
char* mlops_booster_create_from_modelfile(const mlops_lgbm_api* a, const char* filename, int* iters,
                                          void** out);
char* mlops_booster_load_model_from_string(const mlops_lgbm_api* a, const char* model, int* iters,
                                           void** out);
char* mlops_booster_free(const mlops_lgbm_api* a, void* h);
char* mlops_booster_add_valid_data(const mlops_lgbm_api* a, void* h, void* valid);
char* mlops_booster_update_one_iter(const mlops_lgbm_api* a, void* h, int* finished);
char* mlops_booster_rollback_one_iter(const mlops_lgbm_api* a, void* h);
char* mlops_booster_get_current_iteration(const mlops_lgbm_api* a, void* h, int* out);
char* mlops_booster_get_eval_counts(const mlops_lgbm_api* a, void* h, int* out);
char* mlops_booster_get_eval_names(const mlops_lgbm_api* a, void* h, int len, int* out_len,
                                   size_t buffer_len, size_t* out_buffer_len, char** out);
char* mlops_booster_get_eval(const mlops_lgbm_api* a, void* h, int data_idx, int* out_len,
                             double* out);
char* mlops_booster_get_feature_names(const mlops_lgbm_api* a, void* h, int len, int* out_len,
                                      size_t buffer_len, size_t* out_buffer_len, char** out);
char* mlops_booster_get_num_feature(const mlops_lgbm_api* a, void* h, int* out);
char* mlops_booster_get_num_classes(const mlops_lgbm_api* a, void* h, int* out);
char* mlops_booster_num_model_per_iteration(const mlops_lgbm_api* a, void* h, int* out);
char* mlops_booster_calc_num_predict(const mlops_lgbm_api* a, void* h, int nrow, int kind,
                                     int start, int num, int64_t* out);
char* mlops_booster_save_model(const mlops_lgbm_api* a, void* h, int start, int num,
                               const char* filename);
// mlops_booster_save_model_to_string returns the model text in *out (malloc'd, caller frees).
char* mlops_booster_save_model_to_string(const mlops_lgbm_api* a, void* h, int start, int num,
                                         char** out, int64_t* out_len);
char* mlops_booster_predict_for_mat(const mlops_lgbm_api* a, void* h, const double* data,
                                    int32_t nrow, int32_t ncol, int kind, int start, int num,
                                    const char* params, int64_t* out_len, double* out);

// mlops_fast is one single-row predictor: LightGBM's FastConfig plus C-allocated input and
// output buffers, so a prediction passes one pointer and allocates nothing.
typedef struct mlops_fast {
  const mlops_lgbm_api* api;
  void* cfg;
  double* in;
  int32_t ncol;
  double* out;
  int64_t out_cap;
  int64_t out_len;
  int64_t cpu_ns;  // thread CPU of the last mlops_fast_predict_cpu
  char err[512];
} mlops_fast;

char* mlops_fast_new(const mlops_lgbm_api* a, void* booster, int kind, int start, int num,
                     int32_t ncol, int64_t out_cap, const char* params, mlops_fast** out);
// mlops_fast_predict scores row (f->ncol values; NULL means f->in) into f->out; on failure
// it returns -1 and copies the error into f->err. LightGBM reads row during the call only.
int mlops_fast_predict(mlops_fast* f, const double* row);
// mlops_fast_predict_cpu is mlops_fast_predict that also stores in f->cpu_ns the CPU time the
// calling thread spent in LightGBM (CLOCK_THREAD_CPUTIME_ID read before and after, in C, so
// the cgo crossing is not counted; in C memory, so the Go caller allocates nothing).
int mlops_fast_predict_cpu(mlops_fast* f, const double* row);
// mlops_fast_bench_loop scores n rows cycling through rows (nrows x f->ncol, row-major),
// handing each row in place to LightGBM's fast predict straight through the function
// pointer, as a C program would: the floor for the binding's overhead (benchmarks only).
// It stores the calling thread's CPU time spent in the loop in *cpu_ns.
int mlops_fast_bench_loop(mlops_fast* f, const double* rows, int64_t nrows, int64_t n,
                          int64_t* cpu_ns);
// mlops_thread_cpu_ns returns the calling thread's CPU time in nanoseconds.
int64_t mlops_thread_cpu_ns(void);
void mlops_fast_free(mlops_fast* f);
// mlops_lgbm_last_error returns LGBM_GetLastError on the calling thread.
const char* mlops_lgbm_last_error(const mlops_lgbm_api* a);

// mlops_forest is the project's compact single-row evaluator of a LightGBM model with
// numerical splits (forest.c; built by forest.go from the model text): every tree's nodes in
// preorder in one array, 16 bytes a node, a node's left child right after it, leaves inline.
// A prediction reads one cache line per node it visits, where LightGBM's trees keep a node's
// feature, threshold, decision type and children in five arrays of their own. It is
// read-only once built, so any number of threads may predict with it at once.
typedef struct mlops_forest_node {
  double v;       // internal: threshold (go left when value <= v); leaf: its output
  int32_t right;  // internal: index of the right child, relative to the tree's first node
  uint32_t meta;  // feature << 4 | flags (MLOPS_FOREST_*)
} mlops_forest_node;

#define MLOPS_FOREST_LEAF 1u
#define MLOPS_FOREST_DEFAULT_LEFT 2u
#define MLOPS_FOREST_MISSING_SHIFT 2  // 2 bits: 0 none, 1 zero, 2 NaN (LightGBM's missing type)

typedef struct mlops_forest {
  mlops_forest_node* nodes;
  int32_t* start;    // first node of each tree
  int32_t ntrees;
  int32_t transform; // MLOPS_FOREST_IDENTITY or MLOPS_FOREST_SIGMOID
  double sigmoid;    // the binary objective's sigmoid parameter
} mlops_forest;

#define MLOPS_FOREST_IDENTITY 0
#define MLOPS_FOREST_SIGMOID 1

typedef struct mlops_forest_result {
  double v;
  int64_t cpu_ns;
} mlops_forest_result;

// mlops_forest_new allocates a forest of nnodes nodes and ntrees trees (NULL when out of
// memory); the caller fills nodes and start.
mlops_forest* mlops_forest_new(int32_t nnodes, int32_t ntrees, int32_t transform, double sigmoid);
void mlops_forest_free(mlops_forest* f);
// mlops_forest_predict returns the model's output for row (raw: the trees' sum in order;
// sigmoid: LightGBM's binary transform of it), as LightGBM's single-row prediction computes it.
double mlops_forest_predict(const mlops_forest* f, const double* row);
// mlops_forest_predict_cpu is mlops_forest_predict with the calling thread's CPU time spent
// in it.
mlops_forest_result mlops_forest_predict_cpu(const mlops_forest* f, const double* row);
// mlops_forest_bench_loop scores n rows cycling through rows (nrows rows of ncol values) in
// C and returns the sum of the outputs (benchmarks only), with the thread's CPU time.
mlops_forest_result mlops_forest_bench_loop(const mlops_forest* f, const double* rows,
                                            int64_t nrows, int32_t ncol, int64_t n);

#endif
