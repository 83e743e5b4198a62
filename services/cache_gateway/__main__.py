from services.cache_gateway.server import main

main()
