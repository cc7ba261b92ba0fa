"""What the daemon sees of its inboxes: the tracker (which entries exist and which are
complete, tracker.py) and the observers that tell it to look sooner (inotify hints, or
polling on mounts where other hosts' writes cannot be seen, observers.py)."""
