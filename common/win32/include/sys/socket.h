/* Windows: the sockets API is Winsock's (see common/win32/compat.h). */
#include <winsock2.h>
#include <ws2tcpip.h>
