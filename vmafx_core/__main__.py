from vmafx_core.cli import main

main(prog_name="vmafx")
