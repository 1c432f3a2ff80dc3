module github.com/streaming-mlops/mlops/sim

go 1.26.0

replace (
	github.com/streaming-mlops/mlops/proto => ../proto
	github.com/streaming-mlops/mlops/services/platform => ../services/platform
)

require (
	github.com/streaming-mlops/mlops/proto v0.0.0-00010101000000-000000000000
	github.com/streaming-mlops/mlops/services/platform v0.0.0-00010101000000-000000000000
	google.golang.org/protobuf v1.36.12
)
