variable "acl_file" {
  description = "The Kafka access definition (TOML): one table per principal, arrays of name prefixes."
  type        = string

  validation {
    condition     = fileexists(var.acl_file)
    error_message = "The acl_file must be an existing file, normally infra/kafka/acls.toml."
  }
}

variable "grant_kinds" {
  description = "The kinds of grant each principal's table may list."
  type        = list(string)
  default     = ["produce", "consume", "groups", "transactional_ids"]
}
