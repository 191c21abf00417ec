output "principals" {
  description = "Per principal (service), its grants: produce, consume, groups, transactional_ids (name prefixes)."
  value       = local.principals
}
