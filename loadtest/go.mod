module github.com/streaming-mlops/mlops/loadtest

go 1.26.0

replace (
	github.com/streaming-mlops/mlops/proto => ../proto
	github.com/streaming-mlops/mlops/services/platform => ../services/platform
)

require github.com/streaming-mlops/mlops/services/platform v0.0.0-00010101000000-000000000000
