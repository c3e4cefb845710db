package app

// Test-only access to the assistant's handling of model output, for the fuzz tests.

// CleanReplyForTest makes a model's text a valid message text.
func CleanReplyForTest(s string) string { return cleanReply(s) }
