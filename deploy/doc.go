// Package deploy holds no code of its own: its tests check the Kubernetes manifests under
// k8s/ and the Grafana dashboards under grafana/ without a cluster (see docs/k8s.md).
package deploy
