package domain

// Events returns the registry definitions of every event type Metachat stores. New aggregates add
// their definitions here.
func Events() []EventDef {
	var defs []EventDef
	defs = append(defs, TenantEventDefs()...)
	// Each aggregate adds its definitions on its own line below.
	defs = append(defs, IdentityEventDefs()...)
	defs = append(defs, ConversationEventDefs()...)
	defs = append(defs, WidgetEventDefs()...)
	defs = append(defs, DocumentEventDefs()...)
	defs = append(defs, AssistantEventDefs()...)
	return defs
}

// NewDefaultRegistry returns the registry of every event type Metachat stores.
func NewDefaultRegistry() *Registry {
	r, err := NewRegistry(Events()...)
	if err != nil {
		// The definitions are static; a failure is a programming error caught by the tests.
		panic(err)
	}
	return r
}
