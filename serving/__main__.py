from serving.runtime.launch import main

main()
