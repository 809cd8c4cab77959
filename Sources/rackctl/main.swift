print("rackctl")
