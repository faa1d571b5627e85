"""Running printroom: `PrintroomPlugin` for any Temporal worker, the checks it makes at start, and the
`printroom worker` process built on it."""
