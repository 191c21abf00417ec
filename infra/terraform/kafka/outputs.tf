output "topics" {
  description = "The topics created, by name: partitions and configs."
  value       = { for name, topic in kafka_topic.this : name => { partitions = topic.partitions, config = topic.config } }
}

output "principals" {
  description = "The SCRAM users (one per service) and their grants, as read from the definition."
  value       = local.principals
}

output "credentials" {
  description = "Each service's SCRAM username and password, for the platform module's Kubernetes Secrets."
  sensitive   = true
  value = {
    for name, user in kafka_user_scram_credential.service : name => {
      username = user.username
      password = random_password.scram[name].result
    }
  }
}

output "acl_count" {
  description = "How many ACLs are managed (the definition's grants times their operations)."
  value       = length(kafka_acl.grant)
}
