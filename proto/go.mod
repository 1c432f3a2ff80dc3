module github.com/streaming-mlops/mlops/proto

go 1.26
