"""The worker process: connects to Temporal, registers printroom's workflows and activities, runs until stopped."""
