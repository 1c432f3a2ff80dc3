module github.com/streaming-mlops/mlops/services/ingestion

go 1.26

replace (
	github.com/streaming-mlops/mlops/proto => ../../proto
	github.com/streaming-mlops/mlops/services/platform => ../platform
)
