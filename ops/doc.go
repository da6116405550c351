// Package ops holds no code: it is the folder of deployment files
// (docker-compose.yml at the repository root, Kubernetes manifests with
// KEDA autoscaling, Prometheus alerts, the Grafana dashboard). Its tests
// check those files against the code: that they parse, that every
// setting they pass is one prismflow declares, that every metric they
// query is one prismflow exports, and that every stage is deployed.
package ops
