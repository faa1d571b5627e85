"""Every effect of printroom: rendering, composing and sending emails. Workflows only decide."""
