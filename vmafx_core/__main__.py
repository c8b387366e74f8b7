from vmafx_core.entry import main

main()
