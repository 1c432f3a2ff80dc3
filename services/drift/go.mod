module github.com/streaming-mlops/mlops/services/drift

go 1.26

replace (
	github.com/streaming-mlops/mlops/proto => ../../proto
	github.com/streaming-mlops/mlops/services/platform => ../platform
)
