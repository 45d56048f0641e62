/* Between the Windows halves of plat.h and service.h. */
#ifndef APS_WIN32_WIN_H
#define APS_WIN32_WIN_H

/* The Service Control Manager's Stop and Paramchange reach the functions
 * registered with aps_plat_on_stop and aps_plat_on_reload through these. */
void aps__win_request_stop(void);
void aps__win_request_reload(void);
/* %ProgramData%\apsync: configuration, state and logs of the services. */
const char *aps__win_data_dir(void);

#endif
