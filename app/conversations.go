package app

// Conversations is the conversations service: conversations and their messages. (Being built.)
type Conversations struct{}
