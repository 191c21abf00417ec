output "namespace" {
  description = "The namespace the platform runs in."
  value       = kubernetes_namespace_v1.this.metadata[0].name
}

output "release" {
  description = "The Helm release: name, chart version and status."
  value = {
    name    = helm_release.platform.name
    version = helm_release.platform.version
    status  = helm_release.platform.status
  }
}

output "gateway_service" {
  description = "The gateway's in-cluster address (gRPC)."
  value       = "${var.release_name}-clinical-platform-gateway.${var.namespace}.svc:8443"
}
