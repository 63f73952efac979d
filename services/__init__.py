"""One module per systemd unit: thin loops over the core (`appliance`) and the backends (`models`)."""
