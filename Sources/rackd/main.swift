print("rackd")
