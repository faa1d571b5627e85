"""`printroom web`: the approvers' answer page and the operators' draft previews; stateless, talks to Temporal."""
