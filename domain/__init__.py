"""Pure domain: values, events, rules and state machines. Imports only the standard library."""
