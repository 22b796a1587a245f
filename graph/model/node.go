package model

// Node is any object with a global id. Database rows are bound to GraphQL
// types directly, so the interface asks nothing of them; the global id is
// resolved from the row.
type Node interface{}
