module github.com/streaming-mlops/mlops/deploy

go 1.26.0

require (
	github.com/blang/semver/v4 v4.0.0 // indirect
	k8s.io/api v0.35.0 // indirect
	k8s.io/apimachinery v0.35.0 // indirect
	sigs.k8s.io/kustomize/api v0.21.1 // indirect
)
