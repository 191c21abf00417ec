output "role_prefix" {
  description = "Prefix of the Kubernetes auth roles (the chart's vault.rolePrefix)."
  value       = var.name_prefix
}

output "roles" {
  description = "Kubernetes auth role per service."
  value       = { for service, role in vault_kubernetes_auth_backend_role.service : service => role.role_name }
}

output "policies" {
  description = "Policy name per service."
  value       = { for service, policy in vault_policy.service : service => policy.name }
}

output "transit_mount" {
  description = "Path of the Transit engine."
  value       = vault_mount.transit.path
}

output "phi_key" {
  description = "Name of the PHI key-encryption key."
  value       = vault_transit_secret_backend_key.phi.name
}

output "audit_signing_key" {
  description = "Name of the checkpoint signing key."
  value       = vault_transit_secret_backend_key.checkpoints.name
}

output "key_store_mount" {
  description = "Path of the KV v2 mount of wrapped data keys."
  value       = vault_mount.key_store.path
}
