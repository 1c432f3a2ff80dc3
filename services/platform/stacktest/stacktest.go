// Package stacktest gives integration tests the address of a component of the real local
// stack (Kafka, Elasticsearch, Redis, MLflow, LightGBM's shared library, the project
// virtualenv's Python).
//
// Each component is named by an environment variable that `make test` sets from
// `scripts/stack.sh env`. When the variable is unset the test is skipped with a reason, so a
// bare `go test ./...` works anywhere; when MLOPS_TEST_REQUIRE_STACK=1 (as under `make test`
// and CI) a missing component fails the test instead, so CI can never go green by skipping.
package stacktest

import (
	"os"
	"os/exec"
	"testing"
)

// Environment variables naming the components of the local stack.
const (
	EnvKafkaBrokers = "MLOPS_TEST_KAFKA_BROKERS"
	EnvESURL        = "MLOPS_TEST_ES_URL"
	EnvRedisAddr    = "MLOPS_TEST_REDIS_ADDR"
	EnvMLflowURL    = "MLOPS_TEST_MLFLOW_URL"
	EnvLightGBMLib  = "MLOPS_TEST_LIGHTGBM_LIB"
	EnvPython       = "MLOPS_TEST_PYTHON"
	EnvRequireStack = "MLOPS_TEST_REQUIRE_STACK"
)

// Require returns the value of the environment variable env. When it is empty the test is
// skipped, or failed (t.Fatalf) when MLOPS_TEST_REQUIRE_STACK=1.
func Require(t testing.TB, env string) string {
	t.Helper()
	v := os.Getenv(env)
	if v != "" {
		return v
	}
	if os.Getenv(EnvRequireStack) == "1" {
		t.Fatalf("%s is not set but %s=1: the local stack must be running (make up; eval \"$(scripts/stack.sh env)\")", env, EnvRequireStack)
	}
	t.Skipf("%s not set: start the local stack (make up) and export its variables (scripts/stack.sh env) to run this test", env)
	return ""
}

// KafkaBrokers returns the bootstrap address of the real Kafka (see Require).
func KafkaBrokers(t testing.TB) string { t.Helper(); return Require(t, EnvKafkaBrokers) }

// ElasticsearchURL returns the base URL of the real Elasticsearch (see Require).
func ElasticsearchURL(t testing.TB) string { t.Helper(); return Require(t, EnvESURL) }

// RedisAddr returns host:port of the real Redis (see Require).
func RedisAddr(t testing.TB) string { t.Helper(); return Require(t, EnvRedisAddr) }

// MLflowURL returns the base URL of the real MLflow tracking server (see Require).
func MLflowURL(t testing.TB) string { t.Helper(); return Require(t, EnvMLflowURL) }

// LightGBMLib returns the path of LightGBM's shared library from the project virtualenv (see Require).
func LightGBMLib(t testing.TB) string { t.Helper(); return Require(t, EnvLightGBMLib) }

// Python returns the path of the project virtualenv's python (see Require).
func Python(t testing.TB) string { t.Helper(); return Require(t, EnvPython) }

// Binary returns the path of a program the stack's scripts install (kcat, redis-server). When
// it is not on PATH the test is skipped, or failed when MLOPS_TEST_REQUIRE_STACK=1.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv(EnvRequireStack) == "1" {
		t.Fatalf("%s is not installed but %s=1 (scripts/stack.sh fetch installs it): %v", name, EnvRequireStack, err)
	}
	t.Skipf("%s not installed (scripts/stack.sh fetch installs it): %v", name, err)
	return ""
}
