"""This machine: the Docker engine, the old Multipass VM, what kind of host it is, its ports."""
