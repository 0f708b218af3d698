print("gedgectl")
